/* Internal interfaces of the syntax layer: parameter sets, slice headers, slice data. */
#ifndef ARSEG_HEVC_PARSE_H
#define ARSEG_HEVC_PARSE_H

#include <stddef.h>

#include "hevc_bits.h"
#include "hevc_syntax.h"

/* Return codes of the syntax layer; with HEVC_ERR_* a one-line reason is in the error buffer. */
enum { HEVC_OK = 0, HEVC_ERR_STREAM = -1, HEVC_ERR_UNSUPPORTED = -2 };

#define HEVC_MAX_SPS 16
#define HEVC_MAX_PPS 64

int hevc_fail(char *err, size_t err_len, int code, const char *fmt, ...);

void hevc_skip_scaling_list_data(HevcBits *b);
void hevc_skip_vui(HevcBits *b, int max_sub_layers_minus1);

int hevc_parse_sps(HevcBits *b, HevcSps *sps, char *err, size_t err_len);
int hevc_parse_pps(HevcBits *b, HevcPps *pps, char *err, size_t err_len);
/* Resolves the tile layout and the CTB address maps of pps for sps (allocates them). */
int hevc_pps_activate(HevcPps *pps, const HevcSps *sps, char *err, size_t err_len);
void hevc_pps_release(HevcPps *pps);
/* st_ref_pic_set(idx): sets[0..idx-1] are the ones parsed before (inter RPS prediction). */
int hevc_parse_st_rps(HevcBits *b, const HevcStRps *sets, int idx, int num_sets, HevcStRps *out);

/* The slice segment header; prev is the picture's previous segment (dependent segments copy it).
   On return *data_offset_bits is where the slice data starts. */
int hevc_parse_slice_header(HevcBits *b, int nal_unit_type, int temporal_id, const HevcSps *sps_table,
                            const HevcPps *pps_table, const HevcSliceHeader *prev, HevcSliceHeader *sh,
                            uint32_t *entry_points, int cap_entry_points, char *err, size_t err_len);

/* Per picture scratch state of the slice-data walk (neighbour information at 4x4 / CTB granularity). */
typedef struct HevcWalk HevcWalk;
HevcWalk *hevc_walk_new(void);
void hevc_walk_free(HevcWalk *w);
/* Prepares w for a new picture of pic->sps / pic->pps (clears the neighbour maps). */
int hevc_walk_begin_picture(HevcWalk *w, HevcPictureSyntax *pic, char *err, size_t err_len);
/* Parses the slice data of slice pic->slices[slice_idx] from rbsp[data_offset..size); entry points are
   RBSP byte offsets relative to data_offset (emulation prevention already accounted). */
int hevc_walk_slice(HevcWalk *w, HevcPictureSyntax *pic, int slice_idx, const uint8_t *rbsp, size_t size,
                    size_t data_offset, const uint32_t *entry_points, int n_entry_points, char *err,
                    size_t err_len);

#endif
