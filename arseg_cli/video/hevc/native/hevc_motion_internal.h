/* Shared between the motion layer's files: hevc_refs.c (POC, RPS, DPB, reference lists),
 * hevc_mvpred.c (availability, merge, AMVP, temporal candidates) and hevc_motion.c (the picture walk). */
#ifndef ARSEG_HEVC_MOTION_INTERNAL_H
#define ARSEG_HEVC_MOTION_INTERNAL_H

#include "hevc_motion.h"

#define HEVC_DPB_SLOTS 24
#define HEVC_PRED_FLAG_L0 1
#define HEVC_PRED_FLAG_L1 2

/* The motion of one 4x4 block of the current picture; pred == 0 for intra or not (yet) coded.
   A list that is not used has mv 0 and ref_idx -1, so equal motion compares field by field. */
typedef struct {
    int16_t mv[2][2];
    int8_t ref_idx[2];
    uint8_t pred;
    uint8_t unused;
} MvField;

/* The stored motion of an earlier picture, one per 16x16 block (its top-left 4x4 block), with what
   TMVP needs of the slice that coded it: the POC of each reference and whether it was long-term. */
typedef struct {
    int16_t mv[2][2];
    int32_t ref_poc[2];
    uint8_t pred;
    uint8_t long_term; /* bit 0: list 0, bit 1: list 1 */
} ColMotion;

typedef struct {
    int in_use;    /* marked as used for (short- or long-term) reference */
    int long_term;
    int poc;
    int width, height, w16, h16;
    ColMotion *motion;
    size_t motion_cap;
} DpbPicture;

/* RefPicList0/1 of one slice segment. dpb is the slot of each entry, -1 for a missing picture. */
typedef struct {
    int count[2];
    int poc[2][HEVC_MAX_REFS];
    uint8_t long_term[2][HEVC_MAX_REFS];
    int8_t dpb[2][HEVC_MAX_REFS];
    int col_slot;          /* the collocated picture's slot, -1 when none or missing */
    int col_list;          /* 0 when collocated_from_l0 (always for P slices) */
    int no_backward_pred;  /* NoBackwardPredFlag */
} RefLists;

/* The reference picture set of the current picture (8.3.2), as DPB slots (-1: missing) and POCs. */
typedef struct {
    int n_before, n_after, n_lt;
    int poc_before[HEVC_MAX_RPS_PICS], poc_after[HEVC_MAX_RPS_PICS], poc_lt[HEVC_MAX_LT];
    int slot_before[HEVC_MAX_RPS_PICS], slot_after[HEVC_MAX_RPS_PICS], slot_lt[HEVC_MAX_LT];
} CurrentRps;

struct HevcMotionState {
    DpbPicture dpb[HEVC_DPB_SLOTS];
    int seen_picture;        /* a picture was decoded: the next IRAP is not the first */
    int prev_tid0_poc;
    int rasl_skipped;        /* the last IRAP had NoRaslOutputFlag = 1 */
    CurrentRps rps;
    int poc;
    MvField *field;
    size_t field_cap;
    int w4, h4;
    RefLists *lists;
    int lists_cap;
};

/* The per-picture context the candidate derivations read. */
typedef struct {
    const HevcPictureSyntax *pic;
    const HevcSps *sps;
    const HevcPps *pps;
    HevcMotionState *state;
} PictureContext;

/* One coding unit's geometry as the derivations see it. */
typedef struct {
    int x_cb, y_cb, n_cbs;
    int part_mode;
    int slice_idx;
} CodingBlock;

typedef struct {
    int x, y, w, h, part_idx;
} PredictionBlock;

/* hevc_refs.c */
int hevc_refs_start_picture(HevcMotionState *s, const HevcPictureSyntax *pic, char *err, size_t err_len);
int hevc_refs_build_lists(HevcMotionState *s, const HevcSps *sps, const HevcSliceHeader *sh, RefLists *out,
                          char *err, size_t err_len);
DpbPicture *hevc_refs_store_slot(HevcMotionState *s);

/* hevc_mvpred.c */
void hevc_merge_motion(const PictureContext *ctx, const CodingBlock *cb, PredictionBlock pb, int merge_idx,
                       MvField *out);
void hevc_amvp_predictor(const PictureContext *ctx, const CodingBlock *cb, const PredictionBlock *pb, int list,
                         int ref_idx, int mvp_flag, int16_t mvp[2]);

static inline MvField *hevc_field_at(const HevcMotionState *s, int x, int y)
{
    return &s->field[(size_t)(y >> 2) * (size_t)s->w4 + (size_t)(x >> 2)];
}

#endif
