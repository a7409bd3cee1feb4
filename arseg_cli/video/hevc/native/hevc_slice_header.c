/* The slice segment header (H.265 7.3.6). */
#include <string.h>

#include "hevc_parse.h"

static int ceil_log2(int v) {
    int n = 0;
    while ((1 << n) < v)
        n++;
    return n;
}

static void skip_pred_weight_table(HevcBits *b, const HevcSps *sps, const HevcSliceHeader *sh) {
    int has_chroma = sps->chroma_format_idc != 0;
    hevc_bits_ue(b); /* luma_log2_weight_denom */
    if (has_chroma)
        hevc_bits_se(b);
    for (int list = 0; list < (sh->slice_type == HEVC_SLICE_B ? 2 : 1); list++) {
        int n = sh->num_ref_idx_active[list];
        uint8_t luma[HEVC_MAX_REFS] = {0}, chroma[HEVC_MAX_REFS] = {0};
        for (int i = 0; i < n; i++)
            luma[i] = (uint8_t)hevc_bits_flag(b);
        if (has_chroma)
            for (int i = 0; i < n; i++)
                chroma[i] = (uint8_t)hevc_bits_flag(b);
        for (int i = 0; i < n && !b->overrun; i++) {
            if (luma[i]) {
                hevc_bits_se(b);
                hevc_bits_se(b);
            }
            if (chroma[i])
                for (int j = 0; j < 4; j++)
                    hevc_bits_se(b);
        }
    }
}

static int parse_long_term(HevcBits *b, const HevcSps *sps, HevcSliceHeader *sh) {
    int num_sps = 0;
    if (sps->num_lt_sps > 0)
        num_sps = (int)hevc_bits_ue(b);
    int num_pics = (int)hevc_bits_ue(b);
    if (num_sps > sps->num_lt_sps || num_sps + num_pics > HEVC_MAX_LT - 1)
        return -1;
    sh->num_long_term = num_sps + num_pics;
    int msb_cycle = 0;
    for (int i = 0; i < sh->num_long_term; i++) {
        if (i < num_sps) {
            int idx = sps->num_lt_sps > 1 ? (int)hevc_bits_read(b, ceil_log2(sps->num_lt_sps)) : 0;
            if (idx >= sps->num_lt_sps)
                return -1;
            sh->lt_poc_lsb[i] = sps->lt_poc_lsb_sps[idx];
            sh->lt_used[i] = sps->lt_used_sps[idx];
        } else {
            sh->lt_poc_lsb[i] = (int)hevc_bits_read(b, sps->log2_max_poc_lsb);
            sh->lt_used[i] = (uint8_t)hevc_bits_flag(b);
        }
        sh->lt_msb_present[i] = (uint8_t)hevc_bits_flag(b);
        int delta = sh->lt_msb_present[i] ? (int)hevc_bits_ue(b) : 0;
        /* 7-52: the cycle accumulates within the SPS entries and within the slice entries. */
        msb_cycle = (i == 0 || i == num_sps) ? delta : msb_cycle + delta;
        sh->lt_delta_poc_msb_cycle[i] = msb_cycle;
    }
    return 0;
}

static int num_pic_total_curr(const HevcSliceHeader *sh) {
    int n = 0;
    for (int i = 0; i < sh->st_rps.num_negative + sh->st_rps.num_positive; i++)
        n += sh->st_rps.used[i];
    for (int i = 0; i < sh->num_long_term; i++)
        n += sh->lt_used[i];
    return n;
}

/* The fields after the RPS up to slice_qp_delta that P and B slices carry. */
static int parse_inter_fields(HevcBits *b, const HevcSps *sps, const HevcPps *pps, HevcSliceHeader *sh) {
    sh->num_ref_idx_active[0] = pps->num_ref_idx_default[0];
    sh->num_ref_idx_active[1] = sh->slice_type == HEVC_SLICE_B ? pps->num_ref_idx_default[1] : 0;
    if (hevc_bits_flag(b)) { /* num_ref_idx_active_override_flag */
        sh->num_ref_idx_active[0] = (int)hevc_bits_ue(b) + 1;
        if (sh->slice_type == HEVC_SLICE_B)
            sh->num_ref_idx_active[1] = (int)hevc_bits_ue(b) + 1;
    }
    if (sh->num_ref_idx_active[0] > HEVC_MAX_REFS || sh->num_ref_idx_active[1] > HEVC_MAX_REFS)
        return -1;
    int total = num_pic_total_curr(sh);
    if (total == 0)
        return -1;
    if (pps->lists_modification_present && total > 1) {
        int bits = ceil_log2(total);
        for (int list = 0; list < (sh->slice_type == HEVC_SLICE_B ? 2 : 1); list++) {
            sh->ref_pic_list_modification_flag[list] = hevc_bits_flag(b);
            if (sh->ref_pic_list_modification_flag[list])
                for (int i = 0; i < sh->num_ref_idx_active[list]; i++)
                    sh->list_entry[list][i] = (int)hevc_bits_read(b, bits);
        }
    }
    if (sh->slice_type == HEVC_SLICE_B)
        sh->mvd_l1_zero = hevc_bits_flag(b);
    if (pps->cabac_init_present)
        sh->cabac_init_flag = hevc_bits_flag(b);
    sh->collocated_from_l0 = 1;
    if (sh->temporal_mvp_enabled) {
        if (sh->slice_type == HEVC_SLICE_B)
            sh->collocated_from_l0 = hevc_bits_flag(b);
        if (sh->num_ref_idx_active[sh->collocated_from_l0 ? 0 : 1] > 1) {
            sh->collocated_ref_idx = (int)hevc_bits_ue(b);
            if (sh->collocated_ref_idx >= sh->num_ref_idx_active[sh->collocated_from_l0 ? 0 : 1])
                return -1;
        }
    }
    if ((pps->weighted_pred && sh->slice_type == HEVC_SLICE_P) ||
        (pps->weighted_bipred && sh->slice_type == HEVC_SLICE_B))
        skip_pred_weight_table(b, sps, sh);
    sh->max_num_merge_cand = 5 - (int)hevc_bits_ue(b);
    return sh->max_num_merge_cand < 1 || sh->max_num_merge_cand > 5 ? -1 : 0;
}

/* The fields of an independent slice segment (from slice_reserved_flag to the loop filter flag). */
static int parse_independent(HevcBits *b, const HevcSps *sps, const HevcPps *pps, HevcSliceHeader *sh) {
    hevc_bits_skip(b, (size_t)pps->num_extra_slice_header_bits);
    uint32_t slice_type = hevc_bits_ue(b);
    if (slice_type > 2)
        return -1;
    sh->slice_type = (int)slice_type;
    sh->pic_output_flag = pps->output_flag_present ? hevc_bits_flag(b) : 1;
    int idr = sh->nal_unit_type == 19 || sh->nal_unit_type == 20;
    if (!idr) {
        sh->poc_lsb = (int)hevc_bits_read(b, sps->log2_max_poc_lsb);
        sh->short_term_ref_pic_set_sps_flag = hevc_bits_flag(b);
        if (!sh->short_term_ref_pic_set_sps_flag) {
            if (hevc_parse_st_rps(b, sps->st_rps, sps->num_st_rps, sps->num_st_rps, &sh->st_rps) < 0)
                return -1;
        } else {
            if (sps->num_st_rps == 0)
                return -1;
            int idx = sps->num_st_rps > 1 ? (int)hevc_bits_read(b, ceil_log2(sps->num_st_rps)) : 0;
            if (idx >= sps->num_st_rps)
                return -1;
            sh->short_term_ref_pic_set_idx = idx;
            sh->st_rps = sps->st_rps[idx];
        }
        if (sps->long_term_refs_present && parse_long_term(b, sps, sh) < 0)
            return -1;
        if (sps->temporal_mvp_enabled)
            sh->temporal_mvp_enabled = hevc_bits_flag(b);
    }
    if (sps->sao_enabled) {
        sh->sao_luma = hevc_bits_flag(b);
        if (sps->chroma_format_idc != 0)
            sh->sao_chroma = hevc_bits_flag(b);
    }
    if (sh->slice_type != HEVC_SLICE_I && parse_inter_fields(b, sps, pps, sh) < 0)
        return -1;
    int qp_delta = hevc_bits_se(b);
    sh->slice_qp = pps->init_qp + qp_delta;
    if (sh->slice_qp < -6 * (sps->bit_depth_luma - 8) || sh->slice_qp > 51)
        return -1;
    if (pps->slice_chroma_qp_offsets_present) {
        hevc_bits_se(b);
        hevc_bits_se(b);
    }
    int deblocking_disabled = pps->pps_deblocking_disabled;
    if (pps->deblocking_override_enabled && hevc_bits_flag(b)) {
        deblocking_disabled = hevc_bits_flag(b);
        if (!deblocking_disabled) {
            hevc_bits_se(b);
            hevc_bits_se(b);
        }
    }
    if (pps->loop_filter_across_slices && (sh->sao_luma || sh->sao_chroma || !deblocking_disabled))
        hevc_bits_flag(b); /* slice_loop_filter_across_slices_enabled_flag */
    return 0;
}

int hevc_parse_slice_header(HevcBits *b, int nal_unit_type, int temporal_id, const HevcSps *sps_table,
                            const HevcPps *pps_table, const HevcSliceHeader *prev, HevcSliceHeader *sh,
                            uint32_t *entry_points, int cap_entry_points, char *err, size_t err_len) {
    HevcSliceHeader fresh;
    memset(&fresh, 0, sizeof(fresh));
    int first = hevc_bits_flag(b);
    int no_output_of_prior_pics = 0;
    if (nal_unit_type >= 16 && nal_unit_type <= 23)
        no_output_of_prior_pics = hevc_bits_flag(b);
    uint32_t pps_id = hevc_bits_ue(b);
    if (pps_id >= HEVC_MAX_PPS || !pps_table[pps_id].valid)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC slice refers to a missing PPS %u", pps_id);
    const HevcPps *pps = &pps_table[pps_id];
    const HevcSps *sps = &sps_table[pps->sps_id];
    if (!sps->valid)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC PPS %u refers to a missing SPS", pps_id);
    int dependent = 0, address = 0, n_ctbs = sps->ctb_w * sps->ctb_h;
    if (!first) {
        if (pps->dependent_slice_segments_enabled)
            dependent = hevc_bits_flag(b);
        address = (int)hevc_bits_read(b, ceil_log2(n_ctbs));
        if (address >= n_ctbs || address == 0)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice address %d", address);
    }
    if (dependent) {
        if (!prev || prev->pps_id != (int)pps_id)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC dependent slice segment without its slice");
        fresh = *prev;
    } else {
        fresh.slice_addr_rs = address;
    }
    fresh.nal_unit_type = nal_unit_type;
    fresh.temporal_id = temporal_id;
    fresh.first_slice_segment_in_pic = first;
    fresh.no_output_of_prior_pics = no_output_of_prior_pics;
    fresh.pps_id = (int)pps_id;
    fresh.dependent_slice_segment = dependent;
    fresh.slice_segment_address = address;
    fresh.num_entry_points = 0;
    if (!dependent && parse_independent(b, sps, pps, &fresh) < 0)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice header");
    if (pps->tiles_enabled || pps->entropy_coding_sync_enabled) {
        uint32_t n = hevc_bits_ue(b);
        if (n > (uint32_t)n_ctbs || (int)n > cap_entry_points)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice header (%u entry points)", n);
        fresh.num_entry_points = (int)n;
        if (n > 0) {
            int bits = (int)hevc_bits_ue(b) + 1;
            if (bits > 32)
                return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice header (offset length)");
            for (uint32_t i = 0; i < n; i++)
                entry_points[i] = hevc_bits_read(b, bits) + 1;
        }
    }
    if (pps->slice_header_extension_present)
        hevc_bits_skip(b, 8 * (size_t)hevc_bits_ue(b));
    if (!hevc_bits_flag(b)) /* byte_alignment(): alignment_bit_equal_to_one */
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice header (alignment)");
    while (!hevc_bits_byte_aligned(b))
        if (hevc_bits_flag(b))
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice header (alignment)");
    if (b->overrun)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "truncated HEVC slice header");
    *sh = fresh;
    return HEVC_OK;
}
