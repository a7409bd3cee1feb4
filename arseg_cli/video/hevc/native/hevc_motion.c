/* The motion layer's picture walk: checks the syntax layer's records, derives each prediction unit's
 * motion in decoding order, keeps it at 4x4 granularity for the neighbours and at 16x16 for later
 * pictures' temporal candidates, and writes the HevcPuMotion records. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hevc_motion_internal.h"

HevcMotionState *hevc_motion_new(void)
{
    return calloc(1, sizeof(HevcMotionState));
}

void hevc_motion_free(HevcMotionState *state)
{
    if (!state) return;
    for (int i = 0; i < HEVC_DPB_SLOTS; i++) free(state->dpb[i].motion);
    free(state->field);
    free(state->lists);
    free(state);
}

int hevc_motion_rasl_skipped(const HevcMotionState *state, const HevcPictureSyntax *pic)
{
    if (!pic || pic->n_slices < 1) return 0;
    int nal = pic->slices[0].nal_unit_type;
    return (nal == 8 || nal == 9) && state->rasl_skipped;
}

static int fail(char *err, size_t err_len, const char *reason)
{
    snprintf(err, err_len, "%s", reason);
    return -1;
}

static int check_picture(const HevcPictureSyntax *pic, char *err, size_t err_len)
{
    const HevcSps *sps = pic->sps;
    const HevcPps *pps = pic->pps;
    if (!sps || !pps || pic->n_slices < 1 || !pic->slices || !pic->ctb_slice_idx)
        return fail(err, err_len, "picture without parameter sets or slices");
    if (!pps->ctb_addr_rs_to_ts || !pps->tile_id) return fail(err, err_len, "picture parameter set not activated");
    if (sps->log2_ctb < 4 || sps->log2_ctb > 6 || sps->log2_min_tb < 2 || sps->log2_min_tb > sps->log2_ctb ||
        sps->width < 8 || sps->height < 8 || sps->width > 16384 || sps->height > 16384 || sps->width % 8 ||
        sps->height % 8 || sps->ctb_w != (sps->width + (1 << sps->log2_ctb) - 1) >> sps->log2_ctb ||
        sps->ctb_h != (sps->height + (1 << sps->log2_ctb) - 1) >> sps->log2_ctb)
        return fail(err, err_len, "sequence parameter set geometry out of range");
    for (int i = 0; i < pic->n_slices; i++) {
        const HevcSliceHeader *sh = &pic->slices[i];
        if (sh->slice_type != HEVC_SLICE_I && (sh->max_num_merge_cand < 1 || sh->max_num_merge_cand > 5))
            return fail(err, err_len, "MaxNumMergeCand out of range");
    }
    return 0;
}

static int reserve(void **buf, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap) return 0;
    void *grown = realloc(*buf, need * item);
    if (!grown) return -1;
    *buf = grown;
    *cap = need;
    return 0;
}

static int begin_picture(HevcMotionState *s, const HevcPictureSyntax *pic, char *err, size_t err_len)
{
    if (hevc_refs_start_picture(s, pic, err, err_len) < 0) return -1;
    s->w4 = pic->sps->width >> 2;
    s->h4 = pic->sps->height >> 2;
    size_t n4 = (size_t)s->w4 * (size_t)s->h4, lists_cap = (size_t)s->lists_cap;
    if (reserve((void **)&s->field, &s->field_cap, n4, sizeof(MvField)) < 0 ||
        reserve((void **)&s->lists, &lists_cap, (size_t)pic->n_slices, sizeof(RefLists)) < 0)
        return fail(err, err_len, "out of memory");
    s->lists_cap = (int)lists_cap;
    memset(s->field, 0, n4 * sizeof(MvField));
    for (int i = 0; i < pic->n_slices; i++)
        if (hevc_refs_build_lists(s, pic->sps, &pic->slices[i], &s->lists[i], err, err_len) < 0) return -1;
    return 0;
}

static int check_pu(const HevcPuSyntax *pu, const CodingBlock *cb, const RefLists *rl, int max_merge, int is_b,
                    int skip, char *err, size_t err_len)
{
    if (pu->w < 4 || pu->h < 4 || pu->w % 4 || pu->h % 4 || pu->x < cb->x_cb || pu->y < cb->y_cb ||
        pu->x + pu->w > cb->x_cb + cb->n_cbs || pu->y + pu->h > cb->y_cb + cb->n_cbs || pu->x % 4 || pu->y % 4)
        return fail(err, err_len, "prediction unit outside its coding unit");
    if (pu->merge_flag || skip) return pu->merge_idx < max_merge ? 0 : fail(err, err_len, "merge_idx out of range");
    if (pu->inter_pred_idc > HEVC_PRED_BI || (!is_b && pu->inter_pred_idc != HEVC_PRED_L0))
        return fail(err, err_len, "inter_pred_idc out of range");
    for (int list = 0; list < 2; list++) {
        if (pu->inter_pred_idc != HEVC_PRED_BI && pu->inter_pred_idc != list) continue;
        if (pu->ref_idx[list] < 0 || pu->ref_idx[list] >= rl->count[list])
            return fail(err, err_len, "ref_idx out of range");
        if (pu->mvp_flag[list] > 1) return fail(err, err_len, "mvp flag out of range");
    }
    return 0;
}

static int16_t wrap16(int v)
{
    unsigned u = (unsigned)v & 0xFFFFu;
    return (int16_t)(u >= 0x8000u ? (int)u - 0x10000 : (int)u);
}

static void derive_pu(const PictureContext *ctx, const CodingBlock *cb, const HevcPuSyntax *pu, int skip,
                      MvField *mvf)
{
    PredictionBlock pb = {pu->x, pu->y, pu->w, pu->h, pu->part_idx};
    if (pu->merge_flag || skip) {
        hevc_merge_motion(ctx, cb, pb, pu->merge_idx, mvf);
        return;
    }
    memset(mvf, 0, sizeof(*mvf));
    mvf->ref_idx[0] = mvf->ref_idx[1] = -1;
    for (int list = 0; list < 2; list++) {
        if (pu->inter_pred_idc != HEVC_PRED_BI && pu->inter_pred_idc != list) continue;
        int16_t mvp[2];
        hevc_amvp_predictor(ctx, cb, &pb, list, pu->ref_idx[list], pu->mvp_flag[list], mvp);
        mvf->pred |= (uint8_t)(1 << list);
        mvf->ref_idx[list] = pu->ref_idx[list];
        mvf->mv[list][0] = wrap16(mvp[0] + pu->mvd[list][0]);
        mvf->mv[list][1] = wrap16(mvp[1] + pu->mvd[list][1]);
    }
}

static void store_pu(HevcMotionState *s, const HevcPuSyntax *pu, const MvField *mvf)
{
    for (int y = pu->y; y < pu->y + pu->h; y += 4) {
        MvField *row = hevc_field_at(s, pu->x, y);
        for (int i = 0; i < pu->w >> 2; i++) row[i] = *mvf;
    }
}

static void write_pu(const HevcPuSyntax *pu, const HevcCuSyntax *cu, const RefLists *rl,
                     const MvField *mvf, HevcPuMotion *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->x = pu->x;
    rec->y = pu->y;
    rec->w = (uint8_t)pu->w;
    rec->h = (uint8_t)pu->h;
    rec->flags = (uint8_t)(cu->skip ? HEVC_MOTION_SKIP | HEVC_MOTION_MERGE : pu->merge_flag ? HEVC_MOTION_MERGE : 0);
    for (int list = 0; list < 2; list++) {
        if (!(mvf->pred & (1 << list))) continue;
        rec->flags |= (uint8_t)(list ? HEVC_MOTION_L1 : HEVC_MOTION_L0);
        rec->mv[list][0] = mvf->mv[list][0];
        rec->mv[list][1] = mvf->mv[list][1];
        rec->ref_poc[list] = rl->poc[list][mvf->ref_idx[list]];
    }
}

static void write_intra(const HevcCuSyntax *cu, HevcPuMotion *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->x = cu->x0;
    rec->y = cu->y0;
    rec->w = rec->h = (uint8_t)(1 << cu->log2_size);
    rec->flags = HEVC_MOTION_INTRA;
}

static int check_cu(const PictureContext *ctx, const HevcCuSyntax *cu, char *err, size_t err_len)
{
    const HevcSps *sps = ctx->sps;
    int size = 1 << cu->log2_size;
    if (cu->log2_size < 3 || cu->log2_size > sps->log2_ctb || cu->x0 % size || cu->y0 % size ||
        cu->x0 + size > sps->width || cu->y0 + size > sps->height || cu->slice_idx >= ctx->pic->n_slices ||
        cu->part_mode > HEVC_PART_nRx2N)
        return fail(err, err_len, "coding unit outside the picture or its slices");
    if (!cu->intra && ctx->pic->slices[cu->slice_idx].slice_type == HEVC_SLICE_I)
        return fail(err, err_len, "inter coding unit in an intra slice");
    return 0;
}

static int walk_units(const PictureContext *ctx, HevcPuMotion *out, int *n_out, char *err, size_t err_len)
{
    const HevcPictureSyntax *pic = ctx->pic;
    HevcMotionState *s = ctx->state;
    int pi = 0, n = 0;
    for (int ci = 0; ci < pic->n_cus; ci++) {
        const HevcCuSyntax *cu = &pic->cus[ci];
        if (check_cu(ctx, cu, err, err_len) < 0) return -1;
        if (cu->intra) {
            write_intra(cu, &out[n++]);
            continue;
        }
        CodingBlock cb = {cu->x0, cu->y0, 1 << cu->log2_size, cu->part_mode, cu->slice_idx};
        const HevcSliceHeader *sh = &pic->slices[cu->slice_idx];
        const RefLists *rl = &s->lists[cu->slice_idx];
        for (; pi < pic->n_pus && pic->pus[pi].cu_index == (uint32_t)ci; pi++) {
            const HevcPuSyntax *pu = &pic->pus[pi];
            MvField mvf;
            if (check_pu(pu, &cb, rl, sh->max_num_merge_cand, sh->slice_type == HEVC_SLICE_B, cu->skip,
                         err, err_len) < 0)
                return -1;
            derive_pu(ctx, &cb, pu, cu->skip, &mvf);
            store_pu(s, pu, &mvf);
            write_pu(pu, cu, rl, &mvf, &out[n++]);
        }
    }
    if (pi != pic->n_pus) return fail(err, err_len, "prediction units out of coding-unit order");
    *n_out = n;
    return 0;
}

/* The current picture's motion, one record per 16x16 block, for later pictures' temporal candidates. */
static int store_picture(HevcMotionState *s, const HevcPictureSyntax *pic, char *err, size_t err_len)
{
    const HevcSps *sps = pic->sps;
    DpbPicture *p = hevc_refs_store_slot(s);
    int w16 = (sps->width + 15) >> 4, h16 = (sps->height + 15) >> 4;
    if (reserve((void **)&p->motion, &p->motion_cap, (size_t)w16 * (size_t)h16, sizeof(ColMotion)) < 0)
        return fail(err, err_len, "out of memory");
    p->in_use = 1;
    p->long_term = 0;
    p->poc = s->poc;
    p->width = sps->width;
    p->height = sps->height;
    p->w16 = w16;
    p->h16 = h16;
    for (int by = 0; by < h16; by++) {
        for (int bx = 0; bx < w16; bx++) {
            const MvField *f = hevc_field_at(s, bx << 4, by << 4);
            ColMotion *c = &p->motion[(size_t)by * (size_t)w16 + (size_t)bx];
            int ctb = (by << 4 >> sps->log2_ctb) * sps->ctb_w + (bx << 4 >> sps->log2_ctb);
            int slice = pic->ctb_slice_idx[ctb];
            memset(c, 0, sizeof(*c));
            if (slice < 0 || slice >= pic->n_slices) continue;
            const RefLists *rl = &s->lists[slice];
            c->pred = f->pred;
            for (int list = 0; list < 2; list++) {
                if (!(f->pred & (1 << list))) continue;
                memcpy(c->mv[list], f->mv[list], sizeof(c->mv[list]));
                c->ref_poc[list] = rl->poc[list][f->ref_idx[list]];
                c->long_term |= (uint8_t)(rl->long_term[list][f->ref_idx[list]] << list);
            }
        }
    }
    return 0;
}

int hevc_motion_picture(HevcMotionState *state, const HevcPictureSyntax *pic, HevcPuMotion *out, int *n_out,
                        int *poc, char *err, size_t err_len)
{
    *n_out = 0;
    if (check_picture(pic, err, err_len) < 0) return -1;
    if (begin_picture(state, pic, err, err_len) < 0) return -1;
    *poc = state->poc;
    PictureContext ctx = {pic, pic->sps, pic->pps, state};
    /* A damaged picture is still stored (its undecoded part as intra) for the pictures that follow. */
    int walked = walk_units(&ctx, out, n_out, err, err_len);
    if (store_picture(state, pic, err, err_len) < 0) return -1;
    if (walked < 0) *n_out = 0;
    return walked;
}
