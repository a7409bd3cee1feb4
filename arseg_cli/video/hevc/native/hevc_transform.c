/* transform_tree() and transform_unit() (H.265 7.3.8.8, 7.3.8.10) with cu_qp_delta (7.3.8.14). */
#include "hevc_walk.h"

static int cu_qp_delta(HevcWalk *w) {
    HevcCabac *c = &w->cabac;
    int prefix = 0;
    while (prefix < 5 && hevc_cabac_decision(c, &w->ctx[CTX_CU_QP_DELTA + (prefix ? 1 : 0)]))
        prefix++;
    int abs = prefix;
    if (prefix == 5) {
        int suffix = hevc_cabac_eg_k(c, 0);
        if (suffix < 0 || suffix > 64)
            return -1;
        abs += suffix;
    }
    if (abs)
        hevc_cabac_bypass(c);
    w->cu_qp_delta_coded = 1;
    return 0;
}

static int transform_unit(HevcWalk *w, int x0, int y0, int x_base, int y_base, int log2_size, int blk_idx,
                          int cbf_luma, int cbf_cb, int cbf_cr) {
    if (!cbf_luma && !cbf_cb && !cbf_cr)
        return 0;
    if (w->pps->cu_qp_delta_enabled && !w->cu_qp_delta_coded && cu_qp_delta(w) < 0)
        return -1;
    if (cbf_luma && hevc_residual_coding(w, x0, y0, log2_size, 0) < 0)
        return -1;
    if (w->sps->chroma_format_idc == 0)
        return 0;
    if (log2_size > 2) {
        if (cbf_cb && hevc_residual_coding(w, x0, y0, log2_size - 1, 1) < 0)
            return -1;
        if (cbf_cr && hevc_residual_coding(w, x0, y0, log2_size - 1, 2) < 0)
            return -1;
    } else if (blk_idx == 3) {
        if (cbf_cb && hevc_residual_coding(w, x_base, y_base, 2, 1) < 0)
            return -1;
        if (cbf_cr && hevc_residual_coding(w, x_base, y_base, 2, 2) < 0)
            return -1;
    }
    return 0;
}

int hevc_transform_tree(HevcWalk *w, int x0, int y0, int x_base, int y_base, int log2_size, int depth,
                          int blk_idx, int parent_cb, int parent_cr) {
    HevcCabac *c = &w->cabac;
    const HevcSps *sps = w->sps;
    int split;
    if (log2_size <= sps->log2_max_tb && log2_size > sps->log2_min_tb && depth < w->max_trafo_depth &&
        !(w->intra_split && depth == 0)) {
        split = hevc_cabac_decision(c, &w->ctx[CTX_SPLIT_TRANSFORM + 5 - log2_size]);
    } else {
        int inter_split = sps->max_th_depth_inter == 0 && !w->cu_intra && w->cu_part != HEVC_PART_2Nx2N &&
                          depth == 0;
        split = log2_size > sps->log2_max_tb || (w->intra_split && depth == 0) || inter_split;
    }
    int cbf_cb = 0, cbf_cr = 0;
    if (sps->chroma_format_idc != 0) {
        if (log2_size > 2) {
            if (depth == 0 || parent_cb)
                cbf_cb = hevc_cabac_decision(c, &w->ctx[CTX_CBF_CHROMA + depth]);
            if (depth == 0 || parent_cr)
                cbf_cr = hevc_cabac_decision(c, &w->ctx[CTX_CBF_CHROMA + depth]);
        } else {
            cbf_cb = parent_cb;
            cbf_cr = parent_cr;
        }
    }
    if (split) {
        int half = 1 << (log2_size - 1);
        for (int i = 0; i < 4; i++)
            if (hevc_transform_tree(w, x0 + (i & 1) * half, y0 + (i >> 1) * half, x0, y0, log2_size - 1, depth + 1,
                               i, cbf_cb, cbf_cr) < 0)
                return -1;
        return 0;
    }
    int cbf_luma = 1;
    if (w->cu_intra || depth != 0 || cbf_cb || cbf_cr)
        cbf_luma = hevc_cabac_decision(c, &w->ctx[CTX_CBF_LUMA + (depth == 0 ? 1 : 0)]);
    return transform_unit(w, x0, y0, x_base, y_base, log2_size, blk_idx, cbf_luma, cbf_cb, cbf_cr);
}
