/* The motion layer's interface (hevc_motion.c): one HevcMotionState per stream. */
#ifndef ARSEG_HEVC_MOTION_H
#define ARSEG_HEVC_MOTION_H

#include "hevc_syntax.h"

enum {
    HEVC_MOTION_INTRA = 1, /* an intra coding unit (w = h = its size) */
    HEVC_MOTION_SKIP = 2,  /* cu_skip_flag: merge, no residual */
    HEVC_MOTION_MERGE = 4,
    HEVC_MOTION_L0 = 8,    /* predFlagL0 */
    HEVC_MOTION_L1 = 16    /* predFlagL1 */
};

/* 24 bytes, natural alignment; arseg_cli/video/hevc/parser.py mirrors it as a NumPy dtype. */
typedef struct {
    uint16_t x, y;        /* luma samples of the coded picture (before the conformance window) */
    uint8_t w, h;
    uint8_t flags;        /* HEVC_MOTION_* */
    uint8_t reserved;
    int16_t mv[2][2];     /* [list][x, y], quarter luma samples: the block comes from (x, y) + mv / 4
                             in the reference picture */
    int32_t ref_poc[2];   /* POC of the reference picture of each used list, 0 otherwise */
} HevcPuMotion;

typedef struct HevcMotionState HevcMotionState;

HevcMotionState *hevc_motion_new(void);
void hevc_motion_free(HevcMotionState *state);

/* Derives the motion of one picture. Writes at most pic->n_pus + pic->n_cus records to out (each PU,
   and each intra CU) in decoding order, *n_out their number and *poc the picture's PicOrderCntVal.
   Returns 0, or -1 with a one-line reason in err. */
int hevc_motion_picture(HevcMotionState *state, const HevcPictureSyntax *pic, HevcPuMotion *out,
                        int *n_out, int *poc, char *err, size_t err_len);

/* 1 when pic is a RASL picture of a CRA that started the stream (or followed an end of sequence):
   decoders skip such pictures (FFmpeg outputs nothing for them), so the caller should too. */
int hevc_motion_rasl_skipped(const HevcMotionState *state, const HevcPictureSyntax *pic);

#endif
