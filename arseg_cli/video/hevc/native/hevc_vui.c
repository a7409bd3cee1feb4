/* Parameter-set structures the parser reads past without keeping anything: scaling_list_data() (7.3.4),
   vui_parameters() (E.2.1) and hrd_parameters() (E.2.2). */
#include "hevc_parse.h"

void hevc_skip_scaling_list_data(HevcBits *b) {
    for (int size_id = 0; size_id < 4; size_id++)
        for (int matrix_id = 0; matrix_id < 6; matrix_id += size_id == 3 ? 3 : 1) {
            if (!hevc_bits_flag(b)) {
                hevc_bits_ue(b); /* scaling_list_pred_matrix_id_delta */
                continue;
            }
            int coef_num = 1 << (4 + (size_id << 1));
            if (coef_num > 64)
                coef_num = 64;
            if (size_id > 1)
                hevc_bits_se(b);
            for (int i = 0; i < coef_num && !b->overrun; i++)
                hevc_bits_se(b);
        }
}

static void skip_sub_layer_hrd(HevcBits *b, int cpb_cnt, int sub_pic) {
    for (int i = 0; i < cpb_cnt && !b->overrun; i++) {
        hevc_bits_ue(b);
        hevc_bits_ue(b);
        if (sub_pic) {
            hevc_bits_ue(b);
            hevc_bits_ue(b);
        }
        hevc_bits_flag(b);
    }
}

static void skip_hrd_parameters(HevcBits *b, int max_sub_layers_minus1) {
    int nal = hevc_bits_flag(b), vcl = hevc_bits_flag(b), sub_pic = 0;
    if (nal || vcl) {
        sub_pic = hevc_bits_flag(b);
        if (sub_pic)
            hevc_bits_skip(b, 8 + 5 + 1 + 5);
        hevc_bits_skip(b, 4 + 4 + (sub_pic ? 4 : 0) + 5 + 5 + 5);
    }
    for (int i = 0; i <= max_sub_layers_minus1 && !b->overrun; i++) {
        int fixed_general = hevc_bits_flag(b), fixed_cvs = 1, low_delay = 0, cpb_cnt = 1;
        if (!fixed_general)
            fixed_cvs = hevc_bits_flag(b);
        if (fixed_cvs)
            hevc_bits_ue(b);
        else
            low_delay = hevc_bits_flag(b);
        if (!low_delay)
            cpb_cnt = (int)hevc_bits_ue(b) + 1;
        if (cpb_cnt > 32)
            cpb_cnt = 32;
        if (nal)
            skip_sub_layer_hrd(b, cpb_cnt, sub_pic);
        if (vcl)
            skip_sub_layer_hrd(b, cpb_cnt, sub_pic);
    }
}

void hevc_skip_vui(HevcBits *b, int max_sub_layers_minus1) {
    if (hevc_bits_flag(b) && hevc_bits_read(b, 8) == 255) /* aspect_ratio_idc == EXTENDED_SAR */
        hevc_bits_skip(b, 32);
    if (hevc_bits_flag(b))
        hevc_bits_flag(b); /* overscan_appropriate_flag */
    if (hevc_bits_flag(b)) { /* video_signal_type_present_flag */
        hevc_bits_skip(b, 4);
        if (hevc_bits_flag(b))
            hevc_bits_skip(b, 24);
    }
    if (hevc_bits_flag(b)) { /* chroma_loc_info_present_flag */
        hevc_bits_ue(b);
        hevc_bits_ue(b);
    }
    hevc_bits_skip(b, 3); /* neutral_chroma_indication, field_seq, frame_field_info_present */
    if (hevc_bits_flag(b)) /* default_display_window_flag */
        for (int i = 0; i < 4; i++)
            hevc_bits_ue(b);
    if (hevc_bits_flag(b)) { /* vui_timing_info_present_flag */
        hevc_bits_skip(b, 64);
        if (hevc_bits_flag(b))
            hevc_bits_ue(b);
        if (hevc_bits_flag(b))
            skip_hrd_parameters(b, max_sub_layers_minus1);
    }
    if (hevc_bits_flag(b)) { /* bitstream_restriction_flag */
        hevc_bits_skip(b, 3);
        for (int i = 0; i < 5; i++)
            hevc_bits_ue(b);
    }
}
