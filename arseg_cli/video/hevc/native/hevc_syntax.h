/* The contract between arseg's two HEVC layers.
 *
 * The syntax layer (parameter sets, slice headers, CABAC and the slice-data walk) fills one
 * HevcPictureSyntax per coded picture; the motion layer (POC, reference picture sets and lists,
 * merge / AMVP / temporal candidates, the stored motion of earlier pictures) turns it into one motion
 * record per prediction unit and one per intra coding unit. Neither layer reconstructs pixels.
 * Fields are named after the H.265 syntax elements and variables they hold.
 */
#ifndef ARSEG_HEVC_SYNTAX_H
#define ARSEG_HEVC_SYNTAX_H

#include <stddef.h>
#include <stdint.h>

#define HEVC_MAX_REFS 16
#define HEVC_MAX_ST_RPS 65 /* 64 in the SPS + the one a slice header may code */
#define HEVC_MAX_RPS_PICS 32
#define HEVC_MAX_LT 33
#define HEVC_MAX_TILE_COLS 20
#define HEVC_MAX_TILE_ROWS 22

enum { HEVC_SLICE_B = 0, HEVC_SLICE_P = 1, HEVC_SLICE_I = 2 };
enum { HEVC_PRED_L0 = 0, HEVC_PRED_L1 = 1, HEVC_PRED_BI = 2 };
enum {
    HEVC_PART_2Nx2N = 0, HEVC_PART_2NxN, HEVC_PART_Nx2N, HEVC_PART_NxN,
    HEVC_PART_2NxnU, HEVC_PART_2NxnD, HEVC_PART_nLx2N, HEVC_PART_nRx2N
};

typedef struct {
    int32_t num_negative, num_positive;
    int32_t delta_poc[HEVC_MAX_RPS_PICS]; /* S0 entries first (closest first, negative), then S1 */
    uint8_t used[HEVC_MAX_RPS_PICS];      /* used_by_curr_pic_s0/s1 */
} HevcStRps;

typedef struct {
    int valid, id;
    int general_profile_idc;
    int chroma_format_idc, separate_colour_plane;
    int width, height;                                  /* pic_width/height_in_luma_samples */
    int conf_left, conf_right, conf_top, conf_bottom;   /* conformance window, luma samples */
    int bit_depth_luma, bit_depth_chroma;
    int log2_max_poc_lsb;
    int log2_min_cb, log2_ctb, log2_min_tb, log2_max_tb;
    int max_th_depth_inter, max_th_depth_intra;
    int scaling_list_enabled, amp_enabled, sao_enabled;
    int pcm_enabled, pcm_bit_depth_luma, pcm_bit_depth_chroma, log2_min_pcm, log2_max_pcm;
    int num_st_rps;
    HevcStRps st_rps[HEVC_MAX_ST_RPS];
    int long_term_refs_present, num_lt_sps;
    int lt_poc_lsb_sps[HEVC_MAX_LT];
    uint8_t lt_used_sps[HEVC_MAX_LT];
    int temporal_mvp_enabled, strong_intra_smoothing;
    int ctb_w, ctb_h; /* PicWidthInCtbsY, PicHeightInCtbsY */
} HevcSps;

typedef struct {
    int valid, id, sps_id;
    int dependent_slice_segments_enabled, output_flag_present, num_extra_slice_header_bits;
    int sign_data_hiding, cabac_init_present;
    int num_ref_idx_default[2];
    int init_qp, constrained_intra_pred, transform_skip_enabled;
    int cu_qp_delta_enabled, diff_cu_qp_delta_depth;
    int cb_qp_offset, cr_qp_offset, slice_chroma_qp_offsets_present;
    int weighted_pred, weighted_bipred, transquant_bypass_enabled;
    int tiles_enabled, entropy_coding_sync_enabled;
    int num_tile_cols, num_tile_rows;
    int col_width[HEVC_MAX_TILE_COLS], row_height[HEVC_MAX_TILE_ROWS]; /* in CTBs, uniform spacing resolved */
    int loop_filter_across_slices, deblocking_override_enabled, pps_deblocking_disabled;
    int lists_modification_present, log2_parallel_merge_level;
    int slice_header_extension_present;
    /* Derived by the syntax layer when the PPS is activated with its SPS (owned by the PPS): */
    int32_t *ctb_addr_rs_to_ts, *ctb_addr_ts_to_rs, *tile_id; /* tile_id indexed by the ts address */
    int uniform_spacing; /* added by the syntax layer: col_width/row_height are resolved at activation */
} HevcPps;

typedef struct {
    int nal_unit_type, temporal_id;
    int first_slice_segment_in_pic, no_output_of_prior_pics, pps_id;
    int dependent_slice_segment, slice_segment_address; /* raster-scan CTB address */
    int slice_addr_rs; /* SliceAddrRs: the address of the slice's first (independent) segment */
    int slice_type;    /* HEVC_SLICE_* */
    int pic_output_flag;
    int poc_lsb;       /* slice_pic_order_cnt_lsb (0 for IDR) */
    int short_term_ref_pic_set_sps_flag, short_term_ref_pic_set_idx;
    HevcStRps st_rps;  /* the set in effect: copied from the SPS or coded in the header */
    int num_long_term; /* num_long_term_sps + num_long_term_pics */
    int lt_poc_lsb[HEVC_MAX_LT];
    uint8_t lt_used[HEVC_MAX_LT], lt_msb_present[HEVC_MAX_LT];
    int lt_delta_poc_msb_cycle[HEVC_MAX_LT]; /* DeltaPocMsbCycleLt, accumulated as 7.4.7.1 says */
    int temporal_mvp_enabled;
    int sao_luma, sao_chroma;
    int num_ref_idx_active[2];
    int ref_pic_list_modification_flag[2];
    int list_entry[2][HEVC_MAX_REFS];
    int mvd_l1_zero, cabac_init_flag, collocated_from_l0, collocated_ref_idx;
    int max_num_merge_cand;
    int slice_qp; /* SliceQpY */
    int num_entry_points;
} HevcSliceHeader;

/* One coding unit, in decoding order. */
typedef struct {
    uint16_t x0, y0;
    uint8_t log2_size;
    uint8_t intra;     /* CuPredMode == MODE_INTRA */
    uint8_t skip;      /* cu_skip_flag */
    uint8_t part_mode; /* HEVC_PART_* (2Nx2N for skipped CUs) */
    uint16_t slice_idx; /* index into HevcPictureSyntax.slices of the segment that codes it */
} HevcCuSyntax;

/* One inter prediction unit, in decoding order, as prediction_unit() codes it. */
typedef struct {
    uint16_t x, y, w, h; /* luma samples */
    uint32_t cu_index;   /* into HevcPictureSyntax.cus */
    uint8_t part_idx;
    uint8_t merge_flag, merge_idx;
    uint8_t inter_pred_idc; /* HEVC_PRED_* (meaningless when merge_flag) */
    int8_t ref_idx[2];      /* -1 when the list is not used */
    uint8_t mvp_flag[2];
    int32_t mvd[2][2];      /* [list][x, y], quarter samples; MvdL1 is 0 when mvd_l1_zero applied */
} HevcPuSyntax;

typedef struct {
    const HevcSps *sps;
    const HevcPps *pps;
    HevcSliceHeader *slices; /* one per slice segment, decoding order; a dependent segment carries a
                                copy of its independent segment's header with its own address */
    int n_slices, cap_slices;
    HevcCuSyntax *cus;
    int n_cus, cap_cus;
    HevcPuSyntax *pus;
    int n_pus, cap_pus;
    int32_t *ctb_slice_idx; /* per CTB in raster scan: index into slices, -1 where no segment coded it */
    int after_eos; /* an end-of-sequence NAL unit came before this picture (NoRaslOutputFlag of a CRA) */
    int n_pcm_cus; /* added by the syntax layer: coding units with pcm_flag (diagnostics) */
} HevcPictureSyntax;

#endif
