/* Parameter sets: SPS and PPS (H.265 7.3.2), the short-term RPS (7.3.7) and the tile / CTB address maps
   (6.5.1). The VPS carries nothing the parser needs and is skipped; so are the VUI and scaling lists
   (hevc_vui.c). */
#include <stdlib.h>
#include <string.h>

#include "hevc_parse.h"

static void skip_profile_tier_level(HevcBits *b, int max_sub_layers_minus1, int *profile_idc) {
    hevc_bits_read(b, 3); /* general_profile_space, general_tier_flag */
    *profile_idc = (int)hevc_bits_read(b, 5);
    hevc_bits_skip(b, 32 + 4 + 43 + 1 + 8); /* compatibility flags, constraint flags, level */
    int profile_present[8] = {0}, level_present[8] = {0};
    for (int i = 0; i < max_sub_layers_minus1; i++) {
        profile_present[i] = hevc_bits_flag(b);
        level_present[i] = hevc_bits_flag(b);
    }
    if (max_sub_layers_minus1 > 0)
        hevc_bits_skip(b, 2 * (size_t)(8 - max_sub_layers_minus1));
    for (int i = 0; i < max_sub_layers_minus1; i++)
        hevc_bits_skip(b, (profile_present[i] ? 88 : 0) + (level_present[i] ? 8 : 0));
}

int hevc_parse_st_rps(HevcBits *b, const HevcStRps *sets, int idx, int num_sets, HevcStRps *out) {
    memset(out, 0, sizeof(*out));
    int inter = idx != 0 ? hevc_bits_flag(b) : 0;
    if (inter) {
        int delta_idx = idx == num_sets ? (int)hevc_bits_ue(b) + 1 : 1;
        if (delta_idx > idx)
            return -1;
        int sign = hevc_bits_flag(b);
        int abs_delta = (int)hevc_bits_ue(b) + 1;
        if (abs_delta > 32768)
            return -1;
        int delta_rps = sign ? -abs_delta : abs_delta;
        const HevcStRps *ref = &sets[idx - delta_idx];
        int n_ref = ref->num_negative + ref->num_positive;
        uint8_t used[HEVC_MAX_RPS_PICS + 1], use_delta[HEVC_MAX_RPS_PICS + 1];
        for (int j = 0; j <= n_ref; j++) {
            used[j] = (uint8_t)hevc_bits_flag(b);
            use_delta[j] = used[j] ? 1 : (uint8_t)hevc_bits_flag(b);
        }
        /* 7-61 / 7-62: ref's S0 entries are delta_poc[0..neg), its S1 entries delta_poc[neg..n_ref). */
        int32_t s0[HEVC_MAX_RPS_PICS * 2], s1[HEVC_MAX_RPS_PICS * 2];
        uint8_t u0[HEVC_MAX_RPS_PICS * 2], u1[HEVC_MAX_RPS_PICS * 2];
        int n0 = 0, n1 = 0, neg = ref->num_negative, pos = ref->num_positive;
        for (int j = pos - 1; j >= 0; j--) {
            int d = ref->delta_poc[neg + j] + delta_rps;
            if (d < 0 && use_delta[neg + j]) { s0[n0] = d; u0[n0++] = used[neg + j]; }
        }
        if (delta_rps < 0 && use_delta[n_ref]) { s0[n0] = delta_rps; u0[n0++] = used[n_ref]; }
        for (int j = 0; j < neg; j++) {
            int d = ref->delta_poc[j] + delta_rps;
            if (d < 0 && use_delta[j]) { s0[n0] = d; u0[n0++] = used[j]; }
        }
        for (int j = neg - 1; j >= 0; j--) {
            int d = ref->delta_poc[j] + delta_rps;
            if (d > 0 && use_delta[j]) { s1[n1] = d; u1[n1++] = used[j]; }
        }
        if (delta_rps > 0 && use_delta[n_ref]) { s1[n1] = delta_rps; u1[n1++] = used[n_ref]; }
        for (int j = 0; j < pos; j++) {
            int d = ref->delta_poc[neg + j] + delta_rps;
            if (d > 0 && use_delta[neg + j]) { s1[n1] = d; u1[n1++] = used[neg + j]; }
        }
        if (n0 + n1 > HEVC_MAX_RPS_PICS - 16)
            return -1;
        out->num_negative = n0;
        out->num_positive = n1;
        for (int i = 0; i < n0; i++) { out->delta_poc[i] = s0[i]; out->used[i] = u0[i]; }
        for (int i = 0; i < n1; i++) { out->delta_poc[n0 + i] = s1[i]; out->used[n0 + i] = u1[i]; }
        return b->overrun ? -1 : 0;
    }
    uint32_t neg = hevc_bits_ue(b), pos = hevc_bits_ue(b);
    if (neg > 16 || pos > 16 || neg + pos > 16)
        return -1;
    out->num_negative = (int)neg;
    out->num_positive = (int)pos;
    int poc = 0;
    for (uint32_t i = 0; i < neg; i++) {
        poc -= (int)hevc_bits_ue(b) + 1;
        out->delta_poc[i] = poc;
        out->used[i] = (uint8_t)hevc_bits_flag(b);
    }
    poc = 0;
    for (uint32_t i = 0; i < pos; i++) {
        poc += (int)hevc_bits_ue(b) + 1;
        out->delta_poc[neg + i] = poc;
        out->used[neg + i] = (uint8_t)hevc_bits_flag(b);
    }
    return b->overrun ? -1 : 0;
}

/* The range extension flags that change the parsing of slice data. */
static int sps_range_extension_changes_parsing(HevcBits *b) {
    uint32_t flags = hevc_bits_read(b, 9);
    /* transform_skip_rotation, transform_skip_context, implicit_rdpcm, explicit_rdpcm,
       extended_precision, intra_smoothing_disabled, high_precision_offsets, persistent_rice,
       cabac_bypass_alignment: only intra_smoothing_disabled and high_precision_offsets leave the
       syntax unchanged (transform_skip_rotation changes residuals, not their syntax). */
    return (flags & 0xF3u) != 0;
}

int hevc_parse_sps(HevcBits *b, HevcSps *sps, char *err, size_t err_len) {
    memset(sps, 0, sizeof(*sps));
    hevc_bits_read(b, 4); /* sps_video_parameter_set_id */
    int max_sub_layers_minus1 = (int)hevc_bits_read(b, 3);
    hevc_bits_flag(b);
    skip_profile_tier_level(b, max_sub_layers_minus1, &sps->general_profile_idc);
    uint32_t id = hevc_bits_ue(b);
    if (id >= HEVC_MAX_SPS)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC SPS id %u out of range", id);
    sps->id = (int)id;
    sps->chroma_format_idc = (int)hevc_bits_ue(b);
    if (sps->chroma_format_idc == 3)
        sps->separate_colour_plane = hevc_bits_flag(b);
    sps->width = (int)hevc_bits_ue(b);
    sps->height = (int)hevc_bits_ue(b);
    if (hevc_bits_flag(b)) { /* conformance_window_flag: offsets in chroma samples */
        int sub_w = sps->chroma_format_idc == 1 || sps->chroma_format_idc == 2 ? 2 : 1;
        int sub_h = sps->chroma_format_idc == 1 ? 2 : 1;
        sps->conf_left = (int)hevc_bits_ue(b) * sub_w;
        sps->conf_right = (int)hevc_bits_ue(b) * sub_w;
        sps->conf_top = (int)hevc_bits_ue(b) * sub_h;
        sps->conf_bottom = (int)hevc_bits_ue(b) * sub_h;
    }
    sps->bit_depth_luma = (int)hevc_bits_ue(b) + 8;
    sps->bit_depth_chroma = (int)hevc_bits_ue(b) + 8;
    sps->log2_max_poc_lsb = (int)hevc_bits_ue(b) + 4;
    int ordering_all = hevc_bits_flag(b);
    for (int i = ordering_all ? 0 : max_sub_layers_minus1; i <= max_sub_layers_minus1; i++) {
        hevc_bits_ue(b);
        hevc_bits_ue(b);
        hevc_bits_ue(b);
    }
    sps->log2_min_cb = (int)hevc_bits_ue(b) + 3;
    sps->log2_ctb = sps->log2_min_cb + (int)hevc_bits_ue(b);
    sps->log2_min_tb = (int)hevc_bits_ue(b) + 2;
    sps->log2_max_tb = sps->log2_min_tb + (int)hevc_bits_ue(b);
    sps->max_th_depth_inter = (int)hevc_bits_ue(b);
    sps->max_th_depth_intra = (int)hevc_bits_ue(b);
    if (b->overrun || sps->chroma_format_idc > 3 || sps->width <= 0 || sps->height <= 0 ||
        sps->width > 16888 || sps->height > 16888 || sps->log2_max_poc_lsb > 16 || sps->log2_ctb > 6 ||
        sps->log2_ctb < 4 || sps->log2_max_tb > 5 || sps->log2_min_tb >= sps->log2_min_cb ||
        sps->log2_max_tb > sps->log2_ctb || sps->max_th_depth_inter > 4 || sps->max_th_depth_intra > 4 ||
        sps->bit_depth_luma > 16 || sps->bit_depth_chroma > 16 ||
        sps->width % (1 << sps->log2_min_cb) || sps->height % (1 << sps->log2_min_cb))
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC SPS");
    if (sps->chroma_format_idc == 2 || sps->chroma_format_idc == 3)
        return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                         "HEVC chroma 4:2:2 and 4:4:4 are not supported by the bitstream motion parser");
    if (sps->bit_depth_luma > 10 || sps->bit_depth_chroma > 10)
        return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                         "HEVC bit depths above 10 are not supported by the bitstream motion parser");
    sps->scaling_list_enabled = hevc_bits_flag(b);
    if (sps->scaling_list_enabled && hevc_bits_flag(b))
        hevc_skip_scaling_list_data(b);
    sps->amp_enabled = hevc_bits_flag(b);
    sps->sao_enabled = hevc_bits_flag(b);
    sps->pcm_enabled = hevc_bits_flag(b);
    if (sps->pcm_enabled) {
        sps->pcm_bit_depth_luma = (int)hevc_bits_read(b, 4) + 1;
        sps->pcm_bit_depth_chroma = (int)hevc_bits_read(b, 4) + 1;
        sps->log2_min_pcm = (int)hevc_bits_ue(b) + 3;
        sps->log2_max_pcm = sps->log2_min_pcm + (int)hevc_bits_ue(b);
        hevc_bits_flag(b); /* pcm_loop_filter_disabled_flag */
        if (sps->log2_max_pcm > 5)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC SPS (PCM sizes)");
    }
    uint32_t num_st_rps = hevc_bits_ue(b);
    if (num_st_rps > 64)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC SPS (%u short-term RPS)", num_st_rps);
    sps->num_st_rps = (int)num_st_rps;
    for (int i = 0; i < sps->num_st_rps; i++)
        if (hevc_parse_st_rps(b, sps->st_rps, i, sps->num_st_rps, &sps->st_rps[i]) < 0)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC SPS (short-term RPS %d)", i);
    sps->long_term_refs_present = hevc_bits_flag(b);
    if (sps->long_term_refs_present) {
        uint32_t n = hevc_bits_ue(b);
        if (n > 32)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC SPS (long-term refs)");
        sps->num_lt_sps = (int)n;
        for (uint32_t i = 0; i < n; i++) {
            sps->lt_poc_lsb_sps[i] = (int)hevc_bits_read(b, sps->log2_max_poc_lsb);
            sps->lt_used_sps[i] = (uint8_t)hevc_bits_flag(b);
        }
    }
    sps->temporal_mvp_enabled = hevc_bits_flag(b);
    sps->strong_intra_smoothing = hevc_bits_flag(b);
    if (hevc_bits_flag(b))
        hevc_skip_vui(b, max_sub_layers_minus1);
    if (hevc_bits_flag(b)) { /* sps_extension_present_flag */
        int range = hevc_bits_flag(b), multilayer = hevc_bits_flag(b), ext3d = hevc_bits_flag(b);
        int scc = hevc_bits_flag(b);
        hevc_bits_read(b, 4);
        if (multilayer || ext3d || scc)
            return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                             "HEVC multilayer, 3D and screen content extensions are not supported by the "
                             "bitstream motion parser");
        if (range && sps_range_extension_changes_parsing(b))
            return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                             "HEVC range extensions are not supported by the bitstream motion parser");
    }
    if (b->overrun)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "truncated HEVC SPS");
    if (sps->separate_colour_plane)
        return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                         "HEVC separate colour planes are not supported by the bitstream motion parser");
    int ctb = 1 << sps->log2_ctb;
    sps->ctb_w = (sps->width + ctb - 1) / ctb;
    sps->ctb_h = (sps->height + ctb - 1) / ctb;
    sps->valid = 1;
    return HEVC_OK;
}

int hevc_parse_pps(HevcBits *b, HevcPps *pps, char *err, size_t err_len) {
    memset(pps, 0, sizeof(*pps));
    uint32_t id = hevc_bits_ue(b), sps_id = hevc_bits_ue(b);
    if (id >= HEVC_MAX_PPS || sps_id >= HEVC_MAX_SPS)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC PPS (ids %u, %u)", id, sps_id);
    pps->id = (int)id;
    pps->sps_id = (int)sps_id;
    pps->dependent_slice_segments_enabled = hevc_bits_flag(b);
    pps->output_flag_present = hevc_bits_flag(b);
    pps->num_extra_slice_header_bits = (int)hevc_bits_read(b, 3);
    pps->sign_data_hiding = hevc_bits_flag(b);
    pps->cabac_init_present = hevc_bits_flag(b);
    pps->num_ref_idx_default[0] = (int)hevc_bits_ue(b) + 1;
    pps->num_ref_idx_default[1] = (int)hevc_bits_ue(b) + 1;
    pps->init_qp = 26 + hevc_bits_se(b);
    pps->constrained_intra_pred = hevc_bits_flag(b);
    pps->transform_skip_enabled = hevc_bits_flag(b);
    pps->cu_qp_delta_enabled = hevc_bits_flag(b);
    if (pps->cu_qp_delta_enabled)
        pps->diff_cu_qp_delta_depth = (int)hevc_bits_ue(b);
    pps->cb_qp_offset = hevc_bits_se(b);
    pps->cr_qp_offset = hevc_bits_se(b);
    pps->slice_chroma_qp_offsets_present = hevc_bits_flag(b);
    pps->weighted_pred = hevc_bits_flag(b);
    pps->weighted_bipred = hevc_bits_flag(b);
    pps->transquant_bypass_enabled = hevc_bits_flag(b);
    pps->tiles_enabled = hevc_bits_flag(b);
    pps->entropy_coding_sync_enabled = hevc_bits_flag(b);
    pps->num_tile_cols = pps->num_tile_rows = 1;
    pps->uniform_spacing = 1;
    if (pps->tiles_enabled) {
        uint32_t cols = hevc_bits_ue(b) + 1, rows = hevc_bits_ue(b) + 1;
        if (cols > HEVC_MAX_TILE_COLS || rows > HEVC_MAX_TILE_ROWS)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC PPS (%ux%u tiles)", cols, rows);
        pps->num_tile_cols = (int)cols;
        pps->num_tile_rows = (int)rows;
        pps->uniform_spacing = hevc_bits_flag(b);
        if (!pps->uniform_spacing) {
            for (int i = 0; i < pps->num_tile_cols - 1; i++)
                pps->col_width[i] = (int)hevc_bits_ue(b) + 1;
            for (int i = 0; i < pps->num_tile_rows - 1; i++)
                pps->row_height[i] = (int)hevc_bits_ue(b) + 1;
        }
        hevc_bits_flag(b); /* loop_filter_across_tiles_enabled_flag */
    }
    pps->loop_filter_across_slices = hevc_bits_flag(b);
    if (hevc_bits_flag(b)) { /* deblocking_filter_control_present_flag */
        pps->deblocking_override_enabled = hevc_bits_flag(b);
        pps->pps_deblocking_disabled = hevc_bits_flag(b);
        if (!pps->pps_deblocking_disabled) {
            hevc_bits_se(b);
            hevc_bits_se(b);
        }
    }
    if (hevc_bits_flag(b))
        hevc_skip_scaling_list_data(b);
    pps->lists_modification_present = hevc_bits_flag(b);
    pps->log2_parallel_merge_level = (int)hevc_bits_ue(b) + 2;
    pps->slice_header_extension_present = hevc_bits_flag(b);
    if (hevc_bits_flag(b)) { /* pps_extension_present_flag */
        int range = hevc_bits_flag(b), multilayer = hevc_bits_flag(b), ext3d = hevc_bits_flag(b);
        int scc = hevc_bits_flag(b);
        if (multilayer || ext3d || scc)
            return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                             "HEVC multilayer, 3D and screen content extensions are not supported by the "
                             "bitstream motion parser");
        if (range) {
            int log2_max_ts = pps->transform_skip_enabled ? (int)hevc_bits_ue(b) : 0;
            int cross_component = hevc_bits_flag(b), chroma_qp_offset_list = hevc_bits_flag(b);
            if (log2_max_ts || cross_component || chroma_qp_offset_list)
                return hevc_fail(err, err_len, HEVC_ERR_UNSUPPORTED,
                                 "HEVC range extensions are not supported by the bitstream motion parser");
        }
    }
    if (b->overrun || pps->init_qp < -26 || pps->init_qp > 51 || pps->log2_parallel_merge_level > 6)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC PPS");
    pps->valid = 1;
    return HEVC_OK;
}

void hevc_pps_release(HevcPps *pps) {
    free(pps->ctb_addr_rs_to_ts);
    free(pps->ctb_addr_ts_to_rs);
    free(pps->tile_id);
    pps->ctb_addr_rs_to_ts = pps->ctb_addr_ts_to_rs = pps->tile_id = NULL;
}

int hevc_pps_activate(HevcPps *pps, const HevcSps *sps, char *err, size_t err_len) {
    int w = sps->ctb_w, h = sps->ctb_h, cols = pps->num_tile_cols, rows = pps->num_tile_rows;
    if (cols > w || rows > h)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC PPS (more tiles than CTBs)");
    if (pps->uniform_spacing) {
        for (int i = 0; i < cols; i++)
            pps->col_width[i] = ((i + 1) * w) / cols - (i * w) / cols;
        for (int j = 0; j < rows; j++)
            pps->row_height[j] = ((j + 1) * h) / rows - (j * h) / rows;
    } else {
        int used_w = 0, used_h = 0;
        for (int i = 0; i < cols - 1; i++)
            used_w += pps->col_width[i];
        for (int j = 0; j < rows - 1; j++)
            used_h += pps->row_height[j];
        if (used_w >= w || used_h >= h)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC PPS (tile sizes)");
        pps->col_width[cols - 1] = w - used_w;
        pps->row_height[rows - 1] = h - used_h;
    }
    int col_bd[HEVC_MAX_TILE_COLS + 1] = {0}, row_bd[HEVC_MAX_TILE_ROWS + 1] = {0};
    for (int i = 0; i < cols; i++)
        col_bd[i + 1] = col_bd[i] + pps->col_width[i];
    for (int j = 0; j < rows; j++)
        row_bd[j + 1] = row_bd[j] + pps->row_height[j];
    hevc_pps_release(pps);
    size_t n = (size_t)w * (size_t)h;
    pps->ctb_addr_rs_to_ts = malloc(n * sizeof(int32_t));
    pps->ctb_addr_ts_to_rs = malloc(n * sizeof(int32_t));
    pps->tile_id = malloc(n * sizeof(int32_t));
    if (!pps->ctb_addr_rs_to_ts || !pps->ctb_addr_ts_to_rs || !pps->tile_id) {
        hevc_pps_release(pps);
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "out of memory");
    }
    for (int rs = 0; rs < (int)n; rs++) {
        int tb_x = rs % w, tb_y = rs / w, tile_x = 0, tile_y = 0;
        for (int i = 0; i < cols; i++)
            if (tb_x >= col_bd[i])
                tile_x = i;
        for (int j = 0; j < rows; j++)
            if (tb_y >= row_bd[j])
                tile_y = j;
        int ts = 0;
        for (int i = 0; i < tile_x; i++)
            ts += pps->row_height[tile_y] * pps->col_width[i];
        for (int j = 0; j < tile_y; j++)
            ts += w * pps->row_height[j];
        ts += (tb_y - row_bd[tile_y]) * pps->col_width[tile_x] + tb_x - col_bd[tile_x];
        pps->ctb_addr_rs_to_ts[rs] = ts;
        pps->ctb_addr_ts_to_rs[ts] = rs;
        pps->tile_id[ts] = tile_y * cols + tile_x;
    }
    return HEVC_OK;
}
