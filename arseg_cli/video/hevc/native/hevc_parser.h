/* The syntax layer's entry point: access units in, one HevcPictureSyntax per coded picture out. */
#ifndef ARSEG_HEVC_PARSER_H
#define ARSEG_HEVC_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "hevc_syntax.h"

typedef struct HevcParser HevcParser;

/* Called once per complete picture, in decoding order; a non-zero return stops the parse with that
   code (the callback writes its reason into err). */
typedef int (*HevcPictureCallback)(void *opaque, HevcPictureSyntax *pic, char *err, size_t err_len);

HevcParser *hevc_parser_new(void);
void hevc_parser_free(HevcParser *p);

/* Parses data: NAL units each preceded by a big-endian length of nal_length_size (1-4) bytes, or
   Annex B start codes when nal_length_size is 0. Returns 0 (HEVC_OK), -1 (corrupt stream) or
   -2 (unsupported feature) with a one-line reason in err, or the callback's non-zero code. */
int hevc_parser_parse(HevcParser *p, const uint8_t *data, size_t size, int nal_length_size,
                      HevcPictureCallback on_picture, void *opaque, char *err, size_t err_len);

#endif
