/* slice_segment_data() (H.265 7.3.8.1): the CTU loop, substreams (tiles, WPP entry points), context
   initialisation, WPP and dependent-slice context storage (9.3.1, 9.3.2), and the end checks. */
#include <stdlib.h>
#include <string.h>

#include "hevc_walk.h"

HevcWalk *hevc_walk_new(void) {
    hevc_residual_tables_init();
    return calloc(1, sizeof(HevcWalk));
}

void hevc_walk_free(HevcWalk *w) {
    if (!w)
        return;
    free(w->ctb_slice_addr);
    free(w->ct_depth);
    free(w->skip);
    free(w->intra_mode);
    free(w);
}

int hevc_walk_begin_picture(HevcWalk *w, HevcPictureSyntax *pic, char *err, size_t err_len) {
    const HevcSps *sps = pic->sps;
    size_t n_ctbs = (size_t)sps->ctb_w * (size_t)sps->ctb_h;
    int ctb = 1 << sps->log2_ctb;
    w->stride4 = sps->ctb_w * ctb / 4;
    size_t n_blocks = (size_t)w->stride4 * (size_t)(sps->ctb_h * ctb / 4);
    if (n_ctbs > w->cap_ctbs) {
        free(w->ctb_slice_addr);
        w->ctb_slice_addr = malloc(n_ctbs * sizeof(int32_t));
        w->cap_ctbs = w->ctb_slice_addr ? n_ctbs : 0;
    }
    if (n_blocks > w->cap_blocks) {
        free(w->ct_depth);
        free(w->skip);
        free(w->intra_mode);
        w->ct_depth = malloc(n_blocks);
        w->skip = malloc(n_blocks);
        w->intra_mode = malloc(n_blocks);
        w->cap_blocks = n_blocks;
        if (!w->ct_depth || !w->skip || !w->intra_mode)
            w->cap_blocks = 0;
    }
    if (!w->cap_ctbs || !w->cap_blocks)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "out of memory");
    for (size_t i = 0; i < n_ctbs; i++)
        w->ctb_slice_addr[i] = -1;
    w->pic = pic;
    w->sps = sps;
    w->pps = pic->pps;
    w->ds_valid = 0;
    return HEVC_OK;
}

static void init_contexts(HevcWalk *w) {
    const HevcSliceHeader *sh = w->sh;
    int init_type = 0;
    if (sh->slice_type == HEVC_SLICE_P)
        init_type = sh->cabac_init_flag ? 2 : 1;
    else if (sh->slice_type == HEVC_SLICE_B)
        init_type = sh->cabac_init_flag ? 1 : 2;
    hevc_cabac_init_contexts(w->ctx, init_type, sh->slice_qp);
}

/* First CTB of a row of its tile (the WPP storage / synchronisation points). */
static int wpp_row_start(const HevcPps *pps, int ctb_w, int rs) {
    return rs % ctb_w == 0 || pps->tile_id[pps->ctb_addr_rs_to_ts[rs]] != pps->tile_id[pps->ctb_addr_rs_to_ts[rs - 1]];
}

/* Contexts for the CTB at ts when it starts a tile or a WPP row or the slice segment (9.3.1). */
static void contexts_for_ctb(HevcWalk *w, int ts, int segment_start) {
    const HevcPps *pps = w->pps;
    int rs = pps->ctb_addr_ts_to_rs[ts], ctb_w = w->sps->ctb_w;
    int tile_start = ts == 0 || pps->tile_id[ts] != pps->tile_id[ts - 1];
    if (tile_start) {
        init_contexts(w);
    } else if (pps->entropy_coding_sync_enabled && wpp_row_start(pps, ctb_w, rs)) {
        int log2_ctb = w->sps->log2_ctb, size = 1 << log2_ctb;
        int x = (rs % ctb_w) << log2_ctb, y = (rs / ctb_w) << log2_ctb;
        if (hevc_walk_ctb_available(w, rs, x + size, y - size))
            memcpy(w->ctx, w->ctx_wpp, sizeof(w->ctx));
        else
            init_contexts(w);
    } else if (segment_start) {
        if (w->sh->dependent_slice_segment && w->ds_valid)
            memcpy(w->ctx, w->ctx_ds, sizeof(w->ctx));
        else
            init_contexts(w);
    }
}

/* After a terminate bin of 1 the decoder has consumed the stop (or alignment) bit; the rest of its byte
   must be zero. Returns the next byte offset in the substream, or -1. */
static long aligned_end(const HevcCabac *c) {
    size_t consumed = hevc_cabac_consumed_bits(c);
    if (consumed == 0 || c->overrun * 8 > (size_t)c->bits)
        return -1;
    const uint8_t *s = c->start;
    size_t last = consumed - 1;
    if (!((s[last >> 3] >> (7 - (last & 7))) & 1))
        return -1;
    for (size_t bit = consumed; bit & 7; bit++)
        if ((s[bit >> 3] >> (7 - (bit & 7))) & 1)
            return -1;
    return (long)((consumed + 7) / 8);
}

int hevc_walk_slice(HevcWalk *w, HevcPictureSyntax *pic, int slice_idx, const uint8_t *rbsp, size_t size,
                    size_t data_offset, const uint32_t *entry_points, int n_entry_points, char *err,
                    size_t err_len) {
    w->sh = &pic->slices[slice_idx];
    w->slice_idx = slice_idx;
    const HevcPps *pps = w->pps;
    const HevcSps *sps = w->sps;
    int n_ctbs = sps->ctb_w * sps->ctb_h;
    int ts = pps->ctb_addr_rs_to_ts[w->sh->slice_segment_address];
    if (data_offset >= size)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC slice segment without data");
    const uint8_t *end = rbsp + size;
    size_t sub_start = data_offset;
    int entry = 0;
    hevc_cabac_start(&w->cabac, rbsp + sub_start, end);
    contexts_for_ctb(w, ts, 1);
    for (;;) {
        int rs = pps->ctb_addr_ts_to_rs[ts];
        if (w->ctb_slice_addr[rs] != -1)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice data (CTB %d coded twice)", rs);
        w->ctb_slice_addr[rs] = w->sh->slice_addr_rs;
        pic->ctb_slice_idx[rs] = slice_idx;
        if (hevc_walk_ctu(w, rs) < 0 || w->cabac.overrun > 2)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice data at CTB %d", rs);
        if (pps->entropy_coding_sync_enabled &&
            (rs % sps->ctb_w == 1 ||
             (rs > 1 && pps->tile_id[ts] != pps->tile_id[pps->ctb_addr_rs_to_ts[rs - 2]] &&
              !wpp_row_start(pps, sps->ctb_w, rs))) )
            memcpy(w->ctx_wpp, w->ctx, sizeof(w->ctx));
        int end_of_segment = hevc_cabac_terminate(&w->cabac);
        ts++;
        if (end_of_segment) {
            long next = aligned_end(&w->cabac);
            if (next < 0)
                return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice data (end at CTB %d)", rs);
            for (size_t i = sub_start + (size_t)next; i < size; i++)
                if (rbsp[i] != 0) /* only cabac_zero_words may follow */
                    return hevc_fail(err, err_len, HEVC_ERR_STREAM,
                                     "corrupt HEVC slice data (%zu bytes after the end)", size - sub_start - next);
            if (entry != n_entry_points)
                return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice data (entry points)");
            if (pps->dependent_slice_segments_enabled) {
                memcpy(w->ctx_ds, w->ctx, sizeof(w->ctx));
                w->ds_valid = 1;
            }
            return HEVC_OK;
        }
        if (ts >= n_ctbs)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice data (no end)");
        int next_rs = pps->ctb_addr_ts_to_rs[ts];
        int new_tile = pps->tiles_enabled && pps->tile_id[ts] != pps->tile_id[ts - 1];
        int new_row = pps->entropy_coding_sync_enabled && wpp_row_start(pps, sps->ctb_w, next_rs);
        if (new_tile || new_row) {
            if (!hevc_cabac_terminate(&w->cabac)) /* end_of_subset_one_bit */
                return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice data (substream end)");
            long next = aligned_end(&w->cabac);
            if (next < 0 || entry >= n_entry_points || (size_t)next != entry_points[entry])
                return hevc_fail(err, err_len, HEVC_ERR_STREAM,
                                 "corrupt HEVC slice data (substream end at CTB %d)", rs);
            sub_start += (size_t)next;
            entry++;
            if (sub_start >= size)
                return hevc_fail(err, err_len, HEVC_ERR_STREAM, "truncated HEVC slice data");
            hevc_cabac_start(&w->cabac, rbsp + sub_start, end);
            contexts_for_ctb(w, ts, 0);
        }
    }
}
