/* The coding tree of slice data (H.265 7.3.8.2-7.3.8.10, 7.3.8.12): coding quadtree, coding units,
   prediction units (transform trees: hevc_transform.c). Fills the CU and PU records of the picture. */
#include <stdlib.h>
#include <string.h>

#include "hevc_walk.h"

enum { INTRA_PLANAR = 0, INTRA_DC = 1, INTRA_ANGULAR26 = 26, INTRA_ANGULAR10 = 10 };

static int grow(void **array, int *cap, int need, size_t item) {
    if (need <= *cap)
        return 0;
    int cap_new = *cap ? *cap * 2 : 256;
    while (cap_new < need)
        cap_new *= 2;
    void *p = realloc(*array, (size_t)cap_new * item);
    if (!p)
        return -1;
    *array = p;
    *cap = cap_new;
    return 0;
}

/* 6.4.1 for a left or above neighbour (xn, yn) of the block at (xc, yc): inside the picture, and in the
   current CTB or in an already decoded CTB of the same slice and tile. */
static int available(const HevcWalk *w, int xc, int yc, int xn, int yn) {
    if (xn < 0 || yn < 0 || xn >= w->sps->width || yn >= w->sps->height)
        return 0;
    int log2_ctb = w->sps->log2_ctb;
    int ctb_n = (yn >> log2_ctb) * w->sps->ctb_w + (xn >> log2_ctb);
    int ctb_c = (yc >> log2_ctb) * w->sps->ctb_w + (xc >> log2_ctb);
    if (ctb_n == ctb_c)
        return 1;
    const int32_t *rs_to_ts = w->pps->ctb_addr_rs_to_ts;
    return w->ctb_slice_addr[ctb_n] == w->sh->slice_addr_rs &&
           w->pps->tile_id[rs_to_ts[ctb_n]] == w->pps->tile_id[rs_to_ts[ctb_c]];
}

static void fill_blocks(uint8_t *map, int stride, int x, int y, int width, int height, uint8_t v) {
    for (int j = y >> 2; j < (y + height) >> 2; j++)
        memset(map + (size_t)j * stride + (x >> 2), v, (size_t)width >> 2);
}

static uint8_t block_at(const HevcWalk *w, const uint8_t *map, int x, int y) {
    return map[(size_t)(y >> 2) * w->stride4 + (x >> 2)];
}

static int sao_syntax(HevcWalk *w, int rx, int ry) {
    HevcCabac *c = &w->cabac;
    int ctb = 1 << w->sps->log2_ctb, x = rx * ctb, y = ry * ctb;
    int merge = 0;
    if (rx > 0 && available(w, x, y, x - 1, y))
        merge = hevc_cabac_decision(c, &w->ctx[CTX_SAO_MERGE]);
    if (!merge && ry > 0 && available(w, x, y, x, y - 1))
        merge = hevc_cabac_decision(c, &w->ctx[CTX_SAO_MERGE]);
    if (merge)
        return 0;
    int type = 0;
    for (int c_idx = 0; c_idx < (w->sps->chroma_format_idc ? 3 : 1); c_idx++) {
        if ((c_idx == 0 && !w->sh->sao_luma) || (c_idx > 0 && !w->sh->sao_chroma))
            continue;
        if (c_idx < 2)
            type = hevc_cabac_decision(c, &w->ctx[CTX_SAO_TYPE]) ? (hevc_cabac_bypass(c) ? 2 : 1) : 0;
        if (type == 0)
            continue;
        int depth = c_idx ? w->sps->bit_depth_chroma : w->sps->bit_depth_luma;
        int max = (1 << ((depth < 10 ? depth : 10) - 5)) - 1, nonzero[4];
        for (int i = 0; i < 4; i++) {
            int v = 0;
            while (v < max && hevc_cabac_bypass(c))
                v++;
            nonzero[i] = v != 0;
        }
        if (type == 1) {
            for (int i = 0; i < 4; i++)
                if (nonzero[i])
                    hevc_cabac_bypass(c);
            hevc_cabac_bypass_bits(c, 5); /* sao_band_position */
        } else if (c_idx < 2) {
            hevc_cabac_bypass_bits(c, 2); /* sao_eo_class */
        }
    }
    return 0;
}

static int mvd_coding(HevcWalk *w, int32_t mvd[2]) {
    HevcCabac *c = &w->cabac;
    int g0[2], g1[2] = {0, 0};
    g0[0] = hevc_cabac_decision(c, &w->ctx[CTX_MVD_GREATER0]);
    g0[1] = hevc_cabac_decision(c, &w->ctx[CTX_MVD_GREATER0]);
    for (int i = 0; i < 2; i++)
        if (g0[i])
            g1[i] = hevc_cabac_decision(c, &w->ctx[CTX_MVD_GREATER1]);
    for (int i = 0; i < 2; i++) {
        mvd[i] = 0;
        if (!g0[i])
            continue;
        int abs = 1;
        if (g1[i]) {
            int rest = hevc_cabac_eg_k(c, 1);
            if (rest < 0 || rest > (1 << 15))
                return -1;
            abs = 2 + rest;
        }
        mvd[i] = hevc_cabac_bypass(c) ? -abs : abs;
    }
    return 0;
}

static int merge_idx(HevcWalk *w) {
    int max = w->sh->max_num_merge_cand - 1;
    if (max <= 0 || !hevc_cabac_decision(&w->cabac, &w->ctx[CTX_MERGE_IDX]))
        return 0;
    int v = 1;
    while (v < max && hevc_cabac_bypass(&w->cabac))
        v++;
    return v;
}

static int prediction_unit(HevcWalk *w, int x, int y, int width, int height, int part_idx, int skip) {
    HevcPictureSyntax *pic = w->pic;
    if (grow((void **)&pic->pus, &pic->cap_pus, pic->n_pus + 1, sizeof(HevcPuSyntax)) < 0)
        return -1;
    HevcPuSyntax *pu = &pic->pus[pic->n_pus++];
    memset(pu, 0, sizeof(*pu));
    pu->x = (uint16_t)x;
    pu->y = (uint16_t)y;
    pu->w = (uint16_t)width;
    pu->h = (uint16_t)height;
    pu->cu_index = (uint32_t)(pic->n_cus - 1);
    pu->part_idx = (uint8_t)part_idx;
    pu->ref_idx[0] = pu->ref_idx[1] = -1;
    HevcCabac *c = &w->cabac;
    pu->merge_flag = (uint8_t)(skip ? 1 : hevc_cabac_decision(c, &w->ctx[CTX_MERGE_FLAG]));
    if (pu->merge_flag) {
        pu->merge_idx = (uint8_t)merge_idx(w);
        return 0;
    }
    int idc = HEVC_PRED_L0;
    if (w->sh->slice_type == HEVC_SLICE_B) {
        int depth = block_at(w, w->ct_depth, x, y);
        if (width + height != 12 && hevc_cabac_decision(c, &w->ctx[CTX_INTER_PRED_IDC + depth]))
            idc = HEVC_PRED_BI;
        else
            idc = hevc_cabac_decision(c, &w->ctx[CTX_INTER_PRED_IDC + 4]) ? HEVC_PRED_L1 : HEVC_PRED_L0;
    }
    pu->inter_pred_idc = (uint8_t)idc;
    for (int list = 0; list < 2; list++) {
        if ((list == 0 && idc == HEVC_PRED_L1) || (list == 1 && idc == HEVC_PRED_L0))
            continue;
        int max = w->sh->num_ref_idx_active[list] - 1, ref = 0;
        while (ref < max) {
            int bin = ref < 2 ? hevc_cabac_decision(c, &w->ctx[CTX_REF_IDX + ref]) : hevc_cabac_bypass(c);
            if (!bin)
                break;
            ref++;
        }
        pu->ref_idx[list] = (int8_t)ref;
        if (!(list == 1 && w->sh->mvd_l1_zero && idc == HEVC_PRED_BI) && mvd_coding(w, pu->mvd[list]) < 0)
            return -1;
        pu->mvp_flag[list] = (uint8_t)hevc_cabac_decision(c, &w->ctx[CTX_MVP_FLAG]);
    }
    return 0;
}

static int parse_part_mode(HevcWalk *w, int log2_size) {
    HevcCabac *c = &w->cabac;
    uint8_t *ctx = &w->ctx[CTX_PART_MODE];
    if (w->cu_intra)
        return hevc_cabac_decision(c, &ctx[0]) ? HEVC_PART_2Nx2N : HEVC_PART_NxN;
    if (hevc_cabac_decision(c, &ctx[0]))
        return HEVC_PART_2Nx2N;
    if (log2_size == w->sps->log2_min_cb) {
        if (hevc_cabac_decision(c, &ctx[1]))
            return HEVC_PART_2NxN;
        if (log2_size == 3)
            return HEVC_PART_Nx2N;
        return hevc_cabac_decision(c, &ctx[2]) ? HEVC_PART_Nx2N : HEVC_PART_NxN;
    }
    int horizontal = hevc_cabac_decision(c, &ctx[1]);
    if (!w->sps->amp_enabled || hevc_cabac_decision(c, &ctx[3]))
        return horizontal ? HEVC_PART_2NxN : HEVC_PART_Nx2N;
    int second = hevc_cabac_bypass(c);
    if (horizontal)
        return second ? HEVC_PART_2NxnD : HEVC_PART_2NxnU;
    return second ? HEVC_PART_nRx2N : HEVC_PART_nLx2N;
}

static int prediction_units(HevcWalk *w, int x0, int y0, int s, int part) {
    int h = s / 2, q = s / 4;
    int boxes[4][4], n = 0;
#define BOX(bx, by, bw, bh) (boxes[n][0] = (bx), boxes[n][1] = (by), boxes[n][2] = (bw), boxes[n][3] = (bh), n++)
    switch (part) {
    case HEVC_PART_2Nx2N: BOX(0, 0, s, s); break;
    case HEVC_PART_2NxN: BOX(0, 0, s, h); BOX(0, h, s, h); break;
    case HEVC_PART_Nx2N: BOX(0, 0, h, s); BOX(h, 0, h, s); break;
    case HEVC_PART_2NxnU: BOX(0, 0, s, q); BOX(0, q, s, s - q); break;
    case HEVC_PART_2NxnD: BOX(0, 0, s, s - q); BOX(0, s - q, s, q); break;
    case HEVC_PART_nLx2N: BOX(0, 0, q, s); BOX(q, 0, s - q, s); break;
    case HEVC_PART_nRx2N: BOX(0, 0, s - q, s); BOX(s - q, 0, q, s); break;
    default: BOX(0, 0, h, h); BOX(h, 0, h, h); BOX(0, h, h, h); BOX(h, h, h, h); break;
    }
#undef BOX
    for (int i = 0; i < n; i++)
        if (prediction_unit(w, x0 + boxes[i][0], y0 + boxes[i][1], boxes[i][2], boxes[i][3], i, 0) < 0)
            return -1;
    return 0;
}

/* 8.4.2: IntraPredModeY of the prediction block at (x, y). */
static int derive_luma_mode(HevcWalk *w, int x, int y, int prev_flag, int idx) {
    int a = available(w, x, y, x - 1, y) ? block_at(w, w->intra_mode, x - 1, y) : INTRA_DC;
    int b = INTRA_DC;
    int ctb_top = (y >> w->sps->log2_ctb) << w->sps->log2_ctb;
    if (y - 1 >= ctb_top && available(w, x, y, x, y - 1))
        b = block_at(w, w->intra_mode, x, y - 1);
    int list[3];
    if (a == b) {
        if (a < 2) {
            list[0] = INTRA_PLANAR;
            list[1] = INTRA_DC;
            list[2] = INTRA_ANGULAR26;
        } else {
            list[0] = a;
            list[1] = 2 + ((a + 29) % 32);
            list[2] = 2 + ((a - 2 + 1) % 32);
        }
    } else {
        list[0] = a;
        list[1] = b;
        list[2] = (a != INTRA_PLANAR && b != INTRA_PLANAR) ? INTRA_PLANAR
                  : (a != INTRA_DC && b != INTRA_DC)       ? INTRA_DC
                                                           : INTRA_ANGULAR26;
    }
    if (prev_flag)
        return list[idx];
    for (int i = 0; i < 2; i++)
        for (int j = i + 1; j < 3; j++)
            if (list[i] > list[j]) {
                int t = list[i];
                list[i] = list[j];
                list[j] = t;
            }
    int mode = idx;
    for (int i = 0; i < 3; i++)
        if (mode >= list[i])
            mode++;
    return mode;
}

static void intra_modes(HevcWalk *w, int x0, int y0, int s) {
    HevcCabac *c = &w->cabac;
    int parts = w->intra_split ? 4 : 1, pb = w->intra_split ? s / 2 : s;
    int prev[4], idx[4];
    for (int k = 0; k < parts; k++)
        prev[k] = hevc_cabac_decision(c, &w->ctx[CTX_PREV_INTRA_LUMA]);
    for (int k = 0; k < parts; k++) {
        if (prev[k])
            idx[k] = hevc_cabac_bypass(c) ? 1 + hevc_cabac_bypass(c) : 0;
        else
            idx[k] = (int)hevc_cabac_bypass_bits(c, 5);
    }
    for (int k = 0; k < parts; k++) {
        int x = x0 + (k & 1) * pb, y = y0 + (k >> 1) * pb;
        int mode = derive_luma_mode(w, x, y, prev[k], idx[k]);
        w->cu_intra_modes[k] = (uint8_t)mode;
        fill_blocks(w->intra_mode, w->stride4, x, y, pb, pb, (uint8_t)mode);
    }
    if (w->sps->chroma_format_idc == 0)
        return;
    int chroma = hevc_cabac_decision(c, &w->ctx[CTX_INTRA_CHROMA]) ? (int)hevc_cabac_bypass_bits(c, 2) : 4;
    static const uint8_t MODES[4] = {INTRA_PLANAR, INTRA_ANGULAR26, INTRA_ANGULAR10, INTRA_DC};
    int luma = w->cu_intra_modes[0];
    if (chroma == 4)
        w->cu_chroma_mode = (uint8_t)luma;
    else
        w->cu_chroma_mode = MODES[chroma] == luma ? 34 : MODES[chroma];
}

/* pcm_sample(): the samples follow pcm_flag at the next byte; the engine restarts after them. */
static int skip_pcm_samples(HevcWalk *w, int log2_size) {
    HevcCabac *c = &w->cabac;
    size_t start = (hevc_cabac_consumed_bits(c) + 7) / 8;
    size_t n = (size_t)1 << (2 * log2_size);
    size_t bits = n * (size_t)w->sps->pcm_bit_depth_luma;
    if (w->sps->chroma_format_idc != 0)
        bits += 2 * (n / 4) * (size_t)w->sps->pcm_bit_depth_chroma;
    size_t next = start + bits / 8;
    if (next >= (size_t)(c->end - c->start))
        return -1;
    hevc_cabac_start(c, c->start + next, c->end);
    c->start -= next; /* consumed bits stay relative to the substream start */
    return 0;
}

static int coding_unit(HevcWalk *w, int x0, int y0, int log2_size, int depth) {
    HevcPictureSyntax *pic = w->pic;
    HevcCabac *c = &w->cabac;
    const HevcSps *sps = w->sps;
    int s = 1 << log2_size;
    if (grow((void **)&pic->cus, &pic->cap_cus, pic->n_cus + 1, sizeof(HevcCuSyntax)) < 0)
        return -1;
    HevcCuSyntax *cu = &pic->cus[pic->n_cus++];
    memset(cu, 0, sizeof(*cu));
    cu->x0 = (uint16_t)x0;
    cu->y0 = (uint16_t)y0;
    cu->log2_size = (uint8_t)log2_size;
    cu->slice_idx = (uint16_t)w->slice_idx;
    w->cu_x = x0;
    w->cu_y = y0;
    w->cu_log2 = log2_size;
    w->cu_bypass = w->pps->transquant_bypass_enabled ? hevc_cabac_decision(c, &w->ctx[CTX_TRANSQUANT_BYPASS]) : 0;
    int skip = 0;
    if (w->sh->slice_type != HEVC_SLICE_I) {
        int inc = (available(w, x0, y0, x0 - 1, y0) && block_at(w, w->skip, x0 - 1, y0)) +
                  (available(w, x0, y0, x0, y0 - 1) && block_at(w, w->skip, x0, y0 - 1));
        skip = hevc_cabac_decision(c, &w->ctx[CTX_CU_SKIP + inc]);
    }
    fill_blocks(w->ct_depth, w->stride4, x0, y0, s, s, (uint8_t)depth);
    fill_blocks(w->skip, w->stride4, x0, y0, s, s, (uint8_t)skip);
    w->cu_intra = 0;
    w->cu_part = HEVC_PART_2Nx2N;
    w->intra_split = 0;
    cu->skip = (uint8_t)skip;
    if (skip) {
        fill_blocks(w->intra_mode, w->stride4, x0, y0, s, s, INTRA_DC);
        return prediction_unit(w, x0, y0, s, s, 0, 1);
    }
    w->cu_intra = w->sh->slice_type == HEVC_SLICE_I ? 1 : hevc_cabac_decision(c, &w->ctx[CTX_PRED_MODE]);
    if (!w->cu_intra || log2_size == sps->log2_min_cb)
        w->cu_part = parse_part_mode(w, log2_size);
    cu->intra = (uint8_t)w->cu_intra;
    cu->part_mode = (uint8_t)w->cu_part;
    int first_pu = pic->n_pus;
    if (w->cu_intra) {
        w->intra_split = w->cu_part == HEVC_PART_NxN;
        if (w->cu_part == HEVC_PART_2Nx2N && sps->pcm_enabled && log2_size >= sps->log2_min_pcm &&
            log2_size <= sps->log2_max_pcm && hevc_cabac_terminate(c)) {
            fill_blocks(w->intra_mode, w->stride4, x0, y0, s, s, INTRA_DC);
            pic->n_pcm_cus++;
            return skip_pcm_samples(w, log2_size);
        }
        intra_modes(w, x0, y0, s);
    } else {
        fill_blocks(w->intra_mode, w->stride4, x0, y0, s, s, INTRA_DC);
        if (prediction_units(w, x0, y0, s, w->cu_part) < 0)
            return -1;
    }
    int root_cbf = 1;
    if (!w->cu_intra && !(w->cu_part == HEVC_PART_2Nx2N && pic->pus[first_pu].merge_flag))
        root_cbf = hevc_cabac_decision(c, &w->ctx[CTX_RQT_ROOT_CBF]);
    if (!root_cbf)
        return 0;
    w->max_trafo_depth = w->cu_intra ? sps->max_th_depth_intra + w->intra_split : sps->max_th_depth_inter;
    return hevc_transform_tree(w, x0, y0, x0, y0, log2_size, 0, 0, 1, 1);
}

static int coding_quadtree(HevcWalk *w, int x0, int y0, int log2_size, int depth) {
    const HevcSps *sps = w->sps;
    int s = 1 << log2_size, split;
    if (x0 + s <= sps->width && y0 + s <= sps->height && log2_size > sps->log2_min_cb) {
        int inc = (available(w, x0, y0, x0 - 1, y0) && block_at(w, w->ct_depth, x0 - 1, y0) > depth) +
                  (available(w, x0, y0, x0, y0 - 1) && block_at(w, w->ct_depth, x0, y0 - 1) > depth);
        split = hevc_cabac_decision(&w->cabac, &w->ctx[CTX_SPLIT_CU + inc]);
    } else {
        split = log2_size > sps->log2_min_cb;
    }
    if (w->pps->cu_qp_delta_enabled && log2_size >= sps->log2_ctb - w->pps->diff_cu_qp_delta_depth)
        w->cu_qp_delta_coded = 0;
    if (!split)
        return coding_unit(w, x0, y0, log2_size, depth);
    int half = s / 2;
    for (int i = 0; i < 4; i++) {
        int x = x0 + (i & 1) * half, y = y0 + (i >> 1) * half;
        if (x < sps->width && y < sps->height && coding_quadtree(w, x, y, log2_size - 1, depth + 1) < 0)
            return -1;
    }
    return 0;
}

int hevc_walk_ctu(HevcWalk *w, int ctb_rs) {
    int rx = ctb_rs % w->sps->ctb_w, ry = ctb_rs / w->sps->ctb_w;
    if ((w->sh->sao_luma || w->sh->sao_chroma) && sao_syntax(w, rx, ry) < 0)
        return -1;
    int log2_ctb = w->sps->log2_ctb;
    return coding_quadtree(w, rx << log2_ctb, ry << log2_ctb, log2_ctb, 0);
}

int hevc_walk_ctb_available(const HevcWalk *w, int ctb_rs, int x_nb, int y_nb) {
    int log2_ctb = w->sps->log2_ctb;
    int xc = (ctb_rs % w->sps->ctb_w) << log2_ctb, yc = (ctb_rs / w->sps->ctb_w) << log2_ctb;
    return available(w, xc, yc, x_nb, y_nb);
}
