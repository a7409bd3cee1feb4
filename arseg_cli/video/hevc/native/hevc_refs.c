/* Picture order counts (8.3.1), the reference picture set and the DPB of stored motion (8.3.2),
 * and the reference picture lists of each slice (8.3.4). */
#include <stdio.h>
#include <string.h>

#include "hevc_motion_internal.h"

enum {
    NAL_RADL_N = 6, NAL_RASL_R = 9, NAL_RSV_VCL_N14 = 14, NAL_RASL_N = 8,
    NAL_BLA_W_LP = 16, NAL_IDR_W_RADL = 19, NAL_IDR_N_LP = 20, NAL_RSV_IRAP_23 = 23
};

#define TEMP_LIST_CAP (HEVC_MAX_REFS + 2 * HEVC_MAX_RPS_PICS + HEVC_MAX_LT)

static int is_irap(int nal) { return nal >= NAL_BLA_W_LP && nal <= NAL_RSV_IRAP_23; }
static int is_idr(int nal) { return nal == NAL_IDR_W_RADL || nal == NAL_IDR_N_LP; }
static int is_bla(int nal) { return nal >= NAL_BLA_W_LP && nal < NAL_IDR_W_RADL; }

/* prevTid0Pic candidates: TemporalId 0, not RASL / RADL, not a sub-layer non-reference picture. */
static int may_be_prev_tid0(const HevcSliceHeader *sh)
{
    int nal = sh->nal_unit_type;
    if (sh->temporal_id != 0) return 0;
    if (nal >= NAL_RADL_N && nal <= NAL_RASL_R) return 0;
    if (nal <= NAL_RSV_VCL_N14 && nal % 2 == 0) return 0;
    return 1;
}

static int derive_poc(HevcMotionState *s, const HevcSliceHeader *sh, int log2_max_lsb, int no_rasl_output)
{
    int max_lsb = 1 << log2_max_lsb, lsb = sh->poc_lsb, msb;
    if (is_irap(sh->nal_unit_type) && no_rasl_output) {
        msb = 0;
    } else {
        int prev_lsb = s->prev_tid0_poc & (max_lsb - 1);
        int prev_msb = s->prev_tid0_poc - prev_lsb;
        if (lsb < prev_lsb && prev_lsb - lsb >= max_lsb / 2) msb = prev_msb + max_lsb;
        else if (lsb > prev_lsb && lsb - prev_lsb > max_lsb / 2) msb = prev_msb - max_lsb;
        else msb = prev_msb;
    }
    return msb + lsb;
}

static int find_lt_slot(const HevcMotionState *s, int poc_lt, int msb_present, int max_lsb)
{
    for (int i = 0; i < HEVC_DPB_SLOTS; i++) {
        const DpbPicture *p = &s->dpb[i];
        if (!p->in_use) continue;
        if (msb_present ? p->poc == poc_lt : (p->poc & (max_lsb - 1)) == poc_lt) return i;
    }
    return -1;
}

static int find_st_slot(const HevcMotionState *s, int poc)
{
    for (int i = 0; i < HEVC_DPB_SLOTS; i++) {
        const DpbPicture *p = &s->dpb[i];
        if (p->in_use && !p->long_term && p->poc == poc) return i;
    }
    return -1;
}

static int check_rps_sizes(const HevcSliceHeader *sh, char *err, size_t err_len)
{
    const HevcStRps *st = &sh->st_rps;
    if (st->num_negative < 0 || st->num_positive < 0 || st->num_negative + st->num_positive > HEVC_MAX_RPS_PICS ||
        sh->num_long_term < 0 || sh->num_long_term > HEVC_MAX_LT) {
        snprintf(err, err_len, "reference picture set too large (%d + %d short-term, %d long-term)",
                 st->num_negative, st->num_positive, sh->num_long_term);
        return -1;
    }
    return 0;
}

/* 8.3.2: the five RPS lists; pictures in none of them leave the DPB. */
static void derive_rps(HevcMotionState *s, const HevcSliceHeader *sh, int max_lsb)
{
    CurrentRps *rps = &s->rps;
    const HevcStRps *st = &sh->st_rps;
    uint8_t keep[HEVC_DPB_SLOTS] = {0};
    memset(rps, 0, sizeof(*rps));

    for (int i = 0; i < sh->num_long_term; i++) {
        int poc_lt = sh->lt_poc_lsb[i];
        if (sh->lt_msb_present[i])
            poc_lt += s->poc - sh->lt_delta_poc_msb_cycle[i] * max_lsb - (s->poc & (max_lsb - 1));
        int slot = find_lt_slot(s, poc_lt, sh->lt_msb_present[i], max_lsb);
        if (slot >= 0) keep[slot] = 1;
        if (sh->lt_used[i]) {
            rps->poc_lt[rps->n_lt] = slot >= 0 ? s->dpb[slot].poc : poc_lt;
            rps->slot_lt[rps->n_lt++] = slot;
        }
    }
    for (int i = 0; i < HEVC_DPB_SLOTS; i++)
        if (keep[i]) s->dpb[i].long_term = 1;

    for (int i = 0; i < st->num_negative + st->num_positive; i++) {
        int poc = s->poc + st->delta_poc[i];
        int slot = find_st_slot(s, poc);
        if (slot >= 0) keep[slot] = 1;
        if (!st->used[i]) continue;
        if (i < st->num_negative) {
            rps->poc_before[rps->n_before] = poc;
            rps->slot_before[rps->n_before++] = slot;
        } else {
            rps->poc_after[rps->n_after] = poc;
            rps->slot_after[rps->n_after++] = slot;
        }
    }
    for (int i = 0; i < HEVC_DPB_SLOTS; i++)
        if (!keep[i]) s->dpb[i].in_use = 0;
}

int hevc_refs_start_picture(HevcMotionState *s, const HevcPictureSyntax *pic, char *err, size_t err_len)
{
    const HevcSliceHeader *sh = &pic->slices[0];
    int log2_max_lsb = pic->sps->log2_max_poc_lsb;
    if (log2_max_lsb < 4 || log2_max_lsb > 16 || sh->poc_lsb < 0 || sh->poc_lsb >= (1 << log2_max_lsb)) {
        snprintf(err, err_len, "picture order count lsb %d out of range", sh->poc_lsb);
        return -1;
    }
    if (check_rps_sizes(sh, err, err_len) < 0) return -1;
    int nal = sh->nal_unit_type;
    int irap = is_irap(nal);
    int no_rasl_output = irap && (is_idr(nal) || is_bla(nal) || !s->seen_picture || pic->after_eos);
    if (irap) s->rasl_skipped = no_rasl_output;
    s->poc = derive_poc(s, sh, log2_max_lsb, no_rasl_output);
    if (may_be_prev_tid0(sh)) s->prev_tid0_poc = s->poc;
    s->seen_picture = 1;

    if (irap && no_rasl_output)
        for (int i = 0; i < HEVC_DPB_SLOTS; i++) s->dpb[i].in_use = 0;
    if (is_idr(nal)) {
        memset(&s->rps, 0, sizeof(s->rps));
        return 0;
    }
    derive_rps(s, sh, 1 << log2_max_lsb);
    return 0;
}

typedef struct {
    int poc, slot, long_term;
} ListEntry;

static int fill_temp_list(const CurrentRps *rps, int list, int n_temp, ListEntry *temp)
{
    int n = 0;
    while (n < n_temp) {
        for (int pass = 0; pass < 2; pass++) {
            int after = (pass == 0) == (list == 1);
            int count = after ? rps->n_after : rps->n_before;
            for (int i = 0; i < count && n < n_temp; i++, n++) {
                temp[n].poc = after ? rps->poc_after[i] : rps->poc_before[i];
                temp[n].slot = after ? rps->slot_after[i] : rps->slot_before[i];
                temp[n].long_term = 0;
            }
        }
        for (int i = 0; i < rps->n_lt && n < n_temp; i++, n++) {
            temp[n].poc = rps->poc_lt[i];
            temp[n].slot = rps->slot_lt[i];
            temp[n].long_term = 1;
        }
    }
    return n;
}

static int usable_slot(const HevcMotionState *s, const HevcSps *sps, int slot)
{
    if (slot < 0) return -1;
    const DpbPicture *p = &s->dpb[slot];
    return p->width == sps->width && p->height == sps->height && p->motion ? slot : -1;
}

int hevc_refs_build_lists(HevcMotionState *s, const HevcSps *sps, const HevcSliceHeader *sh, RefLists *out,
                          char *err, size_t err_len)
{
    const CurrentRps *rps = &s->rps;
    ListEntry temp[TEMP_LIST_CAP];
    memset(out, 0, sizeof(*out));
    out->col_slot = -1;
    if (sh->slice_type == HEVC_SLICE_I) return 0;
    if (sh->slice_type != HEVC_SLICE_P && sh->slice_type != HEVC_SLICE_B) {
        snprintf(err, err_len, "slice type %d unknown", sh->slice_type);
        return -1;
    }
    int n_total = rps->n_before + rps->n_after + rps->n_lt;
    if (n_total == 0) {
        snprintf(err, err_len, "inter slice with no reference picture in its set");
        return -1;
    }
    int n_lists = sh->slice_type == HEVC_SLICE_B ? 2 : 1;
    out->no_backward_pred = 1;
    for (int list = 0; list < n_lists; list++) {
        int n_active = sh->num_ref_idx_active[list];
        if (n_active < 1 || n_active > HEVC_MAX_REFS) {
            snprintf(err, err_len, "num_ref_idx_l%d_active %d out of range", list, n_active);
            return -1;
        }
        int n_temp = fill_temp_list(rps, list, n_active > n_total ? n_active : n_total, temp);
        for (int i = 0; i < n_active; i++) {
            int idx = sh->ref_pic_list_modification_flag[list] ? sh->list_entry[list][i] : i;
            if (idx < 0 || idx >= n_temp) {
                snprintf(err, err_len, "list_entry_l%d %d out of range", list, idx);
                return -1;
            }
            out->poc[list][i] = temp[idx].poc;
            out->long_term[list][i] = (uint8_t)temp[idx].long_term;
            out->dpb[list][i] = (int8_t)usable_slot(s, sps, temp[idx].slot);
            if (temp[idx].poc > s->poc) out->no_backward_pred = 0;
        }
        out->count[list] = n_active;
    }
    out->col_list = sh->slice_type == HEVC_SLICE_B && !sh->collocated_from_l0 ? 1 : 0;
    if (sh->temporal_mvp_enabled) {
        int ref = sh->collocated_ref_idx;
        if (ref < 0 || ref >= out->count[out->col_list]) {
            snprintf(err, err_len, "collocated_ref_idx %d out of range", ref);
            return -1;
        }
        out->col_slot = out->dpb[out->col_list][ref];
    }
    return 0;
}

DpbPicture *hevc_refs_store_slot(HevcMotionState *s)
{
    int victim = -1;
    for (int i = 0; i < HEVC_DPB_SLOTS; i++) {
        if (!s->dpb[i].in_use) return &s->dpb[i];
        if (victim < 0 || s->dpb[i].poc < s->dpb[victim].poc) victim = i;
    }
    return &s->dpb[victim]; /* only a damaged stream keeps more pictures than the DPB holds */
}
