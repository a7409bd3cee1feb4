/* Motion vector prediction: neighbour availability (6.4.1, 6.4.2), merge candidates (8.5.3.2.2-8.5.3.2.5),
 * AMVP candidates (8.5.3.2.6-8.5.3.2.7) and temporal candidates (8.5.3.2.8-8.5.3.2.9). */
#include <stdlib.h>
#include <string.h>

#include "hevc_motion_internal.h"

static int clip3(int lo, int hi, int v) { return v < lo ? lo : v > hi ? hi : v; }

/* Bits of x and y interleaved (y above x): the z-scan order of blocks inside a CTB. */
static unsigned morton(unsigned x, unsigned y)
{
    unsigned z = 0;
    for (int b = 0; b < 8; b++) z |= ((x >> b) & 1u) << (2 * b) | ((y >> b) & 1u) << (2 * b + 1);
    return z;
}

/* 6.4.1: is (xn, yn) decoded before (xc, yc), in the same slice and tile? */
static int zscan_available(const PictureContext *ctx, int slice_idx, int xc, int yc, int xn, int yn)
{
    const HevcSps *sps = ctx->sps;
    if (xn < 0 || yn < 0 || xn >= sps->width || yn >= sps->height) return 0;
    int l = sps->log2_ctb;
    int ctb_n = (yn >> l) * sps->ctb_w + (xn >> l), ctb_c = (yc >> l) * sps->ctb_w + (xc >> l);
    int ts_n = ctx->pps->ctb_addr_rs_to_ts[ctb_n], ts_c = ctx->pps->ctb_addr_rs_to_ts[ctb_c];
    if (ts_n > ts_c) return 0;
    if (ts_n == ts_c) {
        unsigned mask = (1u << l) - 1, t = (unsigned)sps->log2_min_tb;
        if (morton(((unsigned)xn & mask) >> t, ((unsigned)yn & mask) >> t) >
            morton(((unsigned)xc & mask) >> t, ((unsigned)yc & mask) >> t))
            return 0;
    }
    int slice_n = ctx->pic->ctb_slice_idx[ctb_n];
    if (slice_n < 0 || slice_n >= ctx->pic->n_slices) return 0;
    if (ctx->pic->slices[slice_n].slice_addr_rs != ctx->pic->slices[slice_idx].slice_addr_rs) return 0;
    return ctx->pps->tile_id[ts_n] == ctx->pps->tile_id[ts_c];
}

/* 6.4.2: the neighbour's motion, or NULL when it is unavailable or intra. */
static const MvField *neighbour(const PictureContext *ctx, const CodingBlock *cb, const PredictionBlock *pb, int xn,
                                int yn)
{
    int same_cb = xn >= cb->x_cb && yn >= cb->y_cb && xn < cb->x_cb + cb->n_cbs && yn < cb->y_cb + cb->n_cbs;
    if (!same_cb) {
        if (!zscan_available(ctx, cb->slice_idx, pb->x, pb->y, xn, yn)) return NULL;
    } else if (pb->w << 1 == cb->n_cbs && pb->h << 1 == cb->n_cbs && pb->part_idx == 1 && cb->y_cb + pb->h <= yn &&
               cb->x_cb + pb->w > xn) {
        return NULL; /* NxN: the second partition's neighbour in the third, decoded later */
    }
    const MvField *f = hevc_field_at(ctx->state, xn, yn);
    return f->pred ? f : NULL;
}

static int same_motion(const MvField *a, const MvField *b)
{
    return a->pred == b->pred && a->ref_idx[0] == b->ref_idx[0] && a->ref_idx[1] == b->ref_idx[1] &&
           memcmp(a->mv, b->mv, sizeof(a->mv)) == 0;
}

static void scale_mv(int td, int tb, const int16_t in[2], int16_t out[2])
{
    td = clip3(-128, 127, td);
    tb = clip3(-128, 127, tb);
    if (td == 0) { /* only in damaged streams */
        out[0] = in[0];
        out[1] = in[1];
        return;
    }
    int tx = (16384 + (abs(td) >> 1)) / td;
    int scale = clip3(-4096, 4095, (tb * tx + 32) >> 6);
    for (int c = 0; c < 2; c++) {
        int prod = scale * in[c];
        int mag = (abs(prod) + 127) >> 8;
        out[c] = (int16_t)clip3(-32768, 32767, prod < 0 ? -mag : mag);
    }
}

static const RefLists *lists_of(const PictureContext *ctx, const CodingBlock *cb)
{
    return &ctx->state->lists[cb->slice_idx];
}

/* 8.5.3.2.9 for one 16x16 block of the collocated picture. */
static int col_block_mv(const PictureContext *ctx, const CodingBlock *cb, int x, int y, int list, int ref_idx,
                        int16_t mv[2])
{
    const RefLists *rl = lists_of(ctx, cb);
    const DpbPicture *col_pic = &ctx->state->dpb[rl->col_slot];
    const ColMotion *col = &col_pic->motion[(size_t)(y >> 4) * (size_t)col_pic->w16 + (size_t)(x >> 4)];
    int col_list;
    if (!col->pred) return 0;
    if (!(col->pred & HEVC_PRED_FLAG_L0)) col_list = 1;
    else if (!(col->pred & HEVC_PRED_FLAG_L1)) col_list = 0;
    else col_list = rl->no_backward_pred ? list : !rl->col_list;
    int curr_lt = rl->long_term[list][ref_idx];
    if (curr_lt != ((col->long_term >> col_list) & 1)) return 0;
    int col_diff = col_pic->poc - col->ref_poc[col_list];
    int curr_diff = ctx->state->poc - rl->poc[list][ref_idx];
    if (curr_lt || col_diff == curr_diff) {
        mv[0] = col->mv[col_list][0];
        mv[1] = col->mv[col_list][1];
    } else {
        scale_mv(col_diff, curr_diff, col->mv[col_list], mv);
    }
    return 1;
}

/* 8.5.3.2.8: bottom-right (same CTB row, inside the picture), else centre. */
static int temporal_mv(const PictureContext *ctx, const CodingBlock *cb, const PredictionBlock *pb, int list,
                       int ref_idx, int16_t mv[2])
{
    const HevcSliceHeader *sh = &ctx->pic->slices[cb->slice_idx];
    if (!sh->temporal_mvp_enabled || lists_of(ctx, cb)->col_slot < 0) return 0;
    int x_br = pb->x + pb->w, y_br = pb->y + pb->h, l = ctx->sps->log2_ctb;
    if (pb->y >> l == y_br >> l && y_br < ctx->sps->height && x_br < ctx->sps->width &&
        col_block_mv(ctx, cb, x_br, y_br, list, ref_idx, mv))
        return 1;
    return col_block_mv(ctx, cb, pb->x + (pb->w >> 1), pb->y + (pb->h >> 1), list, ref_idx, mv);
}

typedef struct {
    MvField cand[6];
    int n;
} MergeList;

static void spatial_merge(const PictureContext *ctx, const CodingBlock *cb, const PredictionBlock *pb, MergeList *ml)
{
    int par = ctx->pps->log2_parallel_merge_level < 2 ? 2 : ctx->pps->log2_parallel_merge_level;
    int pm = cb->part_mode, second = pb->part_idx == 1;
    int vertical_split = pm == HEVC_PART_Nx2N || pm == HEVC_PART_nLx2N || pm == HEVC_PART_nRx2N;
    int horizontal_split = pm == HEVC_PART_2NxN || pm == HEVC_PART_2NxnU || pm == HEVC_PART_2NxnD;
    const int xs[5] = {pb->x - 1, pb->x + pb->w - 1, pb->x + pb->w, pb->x - 1, pb->x - 1};
    const int ys[5] = {pb->y + pb->h - 1, pb->y - 1, pb->y - 1, pb->y + pb->h, pb->y - 1};
    const MvField *n[5]; /* A1 B1 B0 A0 B2 */
    for (int k = 0; k < 5; k++) {
        int same_region = pb->x >> par == xs[k] >> par && pb->y >> par == ys[k] >> par;
        n[k] = same_region ? NULL : neighbour(ctx, cb, pb, xs[k], ys[k]);
    }
    if (second && vertical_split) n[0] = NULL;
    if (second && horizontal_split) n[1] = NULL;
    /* Pruning compares with the neighbours' availability, the B2 rule counts the candidates kept. */
    int keep[5] = {n[0] != NULL, n[1] && !(n[0] && same_motion(n[1], n[0])),
                   n[2] && !(n[1] && same_motion(n[2], n[1])), n[3] && !(n[0] && same_motion(n[3], n[0])),
                   n[4] && !(n[0] && same_motion(n[4], n[0])) && !(n[1] && same_motion(n[4], n[1]))};
    if (keep[0] + keep[1] + keep[2] + keep[3] == 4) keep[4] = 0;
    for (int k = 0; k < 5; k++)
        if (keep[k]) ml->cand[ml->n++] = *n[k];
}

static void temporal_merge(const PictureContext *ctx, const CodingBlock *cb, const PredictionBlock *pb, MergeList *ml)
{
    MvField c;
    memset(&c, 0, sizeof(c));
    c.ref_idx[0] = c.ref_idx[1] = -1;
    int n_lists = ctx->pic->slices[cb->slice_idx].slice_type == HEVC_SLICE_B ? 2 : 1;
    for (int list = 0; list < n_lists; list++) {
        if (temporal_mv(ctx, cb, pb, list, 0, c.mv[list])) {
            c.pred |= (uint8_t)(1 << list);
            c.ref_idx[list] = 0;
        }
    }
    if (c.pred) ml->cand[ml->n++] = c;
}

static const uint8_t comb_l0[12] = {0, 1, 0, 2, 1, 2, 0, 3, 1, 3, 2, 3};
static const uint8_t comb_l1[12] = {1, 0, 2, 0, 2, 1, 3, 0, 3, 1, 3, 2};

static void combined_bi_merge(const RefLists *rl, MergeList *ml, int max_cand)
{
    int n_orig = ml->n;
    if (n_orig <= 1 || n_orig >= max_cand) return;
    for (int comb = 0; comb < n_orig * (n_orig - 1) && ml->n < max_cand; comb++) {
        const MvField *a = &ml->cand[comb_l0[comb]], *b = &ml->cand[comb_l1[comb]];
        if (!(a->pred & HEVC_PRED_FLAG_L0) || !(b->pred & HEVC_PRED_FLAG_L1)) continue;
        if (rl->poc[0][a->ref_idx[0]] == rl->poc[1][b->ref_idx[1]] && a->mv[0][0] == b->mv[1][0] &&
            a->mv[0][1] == b->mv[1][1])
            continue;
        MvField *c = &ml->cand[ml->n++];
        c->pred = HEVC_PRED_FLAG_L0 | HEVC_PRED_FLAG_L1;
        c->unused = 0;
        c->ref_idx[0] = a->ref_idx[0];
        c->ref_idx[1] = b->ref_idx[1];
        memcpy(c->mv[0], a->mv[0], sizeof(c->mv[0]));
        memcpy(c->mv[1], b->mv[1], sizeof(c->mv[1]));
    }
}

static void zero_merge(const RefLists *rl, int is_b, MergeList *ml, int max_cand)
{
    int n_ref = is_b ? (rl->count[0] < rl->count[1] ? rl->count[0] : rl->count[1]) : rl->count[0];
    for (int zero = 0; ml->n < max_cand; zero++) {
        MvField *c = &ml->cand[ml->n++];
        memset(c, 0, sizeof(*c));
        int ref = zero < n_ref ? zero : 0;
        c->ref_idx[0] = (int8_t)ref;
        c->ref_idx[1] = (int8_t)(is_b ? ref : -1);
        c->pred = (uint8_t)(is_b ? HEVC_PRED_FLAG_L0 | HEVC_PRED_FLAG_L1 : HEVC_PRED_FLAG_L0);
    }
}

void hevc_merge_motion(const PictureContext *ctx, const CodingBlock *cb, PredictionBlock pb, int merge_idx,
                       MvField *out)
{
    const HevcSliceHeader *sh = &ctx->pic->slices[cb->slice_idx];
    const RefLists *rl = lists_of(ctx, cb);
    int is_b = sh->slice_type == HEVC_SLICE_B;
    int bi_restricted = pb.w + pb.h == 12;
    if (ctx->pps->log2_parallel_merge_level > 2 && cb->n_cbs == 8) { /* singleMCLFlag */
        pb.x = cb->x_cb;
        pb.y = cb->y_cb;
        pb.w = pb.h = cb->n_cbs;
        pb.part_idx = 0;
    }
    int max_cand = sh->max_num_merge_cand;
    MergeList ml;
    ml.n = 0;
    spatial_merge(ctx, cb, &pb, &ml);
    if (ml.n <= merge_idx) temporal_merge(ctx, cb, &pb, &ml);
    if (is_b && ml.n <= merge_idx) combined_bi_merge(rl, &ml, max_cand);
    if (ml.n <= merge_idx) zero_merge(rl, is_b, &ml, max_cand);
    *out = ml.cand[merge_idx];
    if (bi_restricted && out->pred == (HEVC_PRED_FLAG_L0 | HEVC_PRED_FLAG_L1)) {
        out->pred = HEVC_PRED_FLAG_L0;
        out->ref_idx[1] = -1;
        out->mv[1][0] = out->mv[1][1] = 0;
    }
}

/* One spatial AMVP candidate from neighbour f: the same reference picture (no scaling), or, when
   allow_scaled, any reference of the same long-term-ness, scaled if both are short-term. */
static int amvp_from(const PictureContext *ctx, const RefLists *rl, const MvField *f, int list, int ref_idx,
                     int allow_scaled, int16_t mv[2])
{
    int target_poc = rl->poc[list][ref_idx], target_lt = rl->long_term[list][ref_idx];
    for (int k = 0; k < 2; k++) {
        int l = k == 0 ? list : !list;
        if (!(f->pred & (1 << l))) continue;
        int poc = rl->poc[l][f->ref_idx[l]];
        if (!allow_scaled) {
            if (poc != target_poc) continue;
            mv[0] = f->mv[l][0];
            mv[1] = f->mv[l][1];
            return 1;
        }
        int lt = rl->long_term[l][f->ref_idx[l]];
        if (lt != target_lt) continue;
        if (lt) {
            mv[0] = f->mv[l][0];
            mv[1] = f->mv[l][1];
        } else if (poc == target_poc) {
            mv[0] = f->mv[l][0];
            mv[1] = f->mv[l][1];
        } else {
            scale_mv(ctx->state->poc - poc, ctx->state->poc - target_poc, f->mv[l], mv);
        }
        return 1;
    }
    return 0;
}

static int first_candidate(const PictureContext *ctx, const RefLists *rl, const MvField *const *n, int count,
                           int list, int ref_idx, int allow_scaled, int16_t mv[2])
{
    for (int k = 0; k < count; k++)
        if (n[k] && amvp_from(ctx, rl, n[k], list, ref_idx, allow_scaled, mv)) return 1;
    return 0;
}

void hevc_amvp_predictor(const PictureContext *ctx, const CodingBlock *cb, const PredictionBlock *pb, int list,
                         int ref_idx, int mvp_flag, int16_t mvp[2])
{
    const RefLists *rl = lists_of(ctx, cb);
    const MvField *a[2] = {neighbour(ctx, cb, pb, pb->x - 1, pb->y + pb->h),
                           neighbour(ctx, cb, pb, pb->x - 1, pb->y + pb->h - 1)};
    const MvField *b[3] = {neighbour(ctx, cb, pb, pb->x + pb->w, pb->y - 1),
                           neighbour(ctx, cb, pb, pb->x + pb->w - 1, pb->y - 1),
                           neighbour(ctx, cb, pb, pb->x - 1, pb->y - 1)};
    int16_t cand[3][2] = {{0, 0}, {0, 0}, {0, 0}}, mv_a[2] = {0, 0}, mv_b[2] = {0, 0};
    int is_scaled = a[0] || a[1];
    int avail_a = first_candidate(ctx, rl, a, 2, list, ref_idx, 0, mv_a) ||
                  first_candidate(ctx, rl, a, 2, list, ref_idx, 1, mv_a);
    int avail_b = first_candidate(ctx, rl, b, 3, list, ref_idx, 0, mv_b);
    if (!is_scaled) {
        if (avail_b) {
            avail_a = 1;
            mv_a[0] = mv_b[0];
            mv_a[1] = mv_b[1];
        }
        avail_b = first_candidate(ctx, rl, b, 3, list, ref_idx, 1, mv_b);
    }
    int n = 0;
    if (avail_a) memcpy(cand[n++], mv_a, sizeof(mv_a));
    if (avail_b && !(avail_a && mv_a[0] == mv_b[0] && mv_a[1] == mv_b[1])) memcpy(cand[n++], mv_b, sizeof(mv_b));
    if (n < 2 && mvp_flag >= n && temporal_mv(ctx, cb, pb, list, ref_idx, cand[n])) n++;
    mvp[0] = cand[mvp_flag][0];
    mvp[1] = cand[mvp_flag][1];
}
