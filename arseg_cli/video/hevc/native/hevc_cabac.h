/* The CABAC arithmetic decoding engine (H.265 9.3.4.3) and the layout of the context variables.
 *
 * value holds ivlOffset followed by `bits` bits already read ahead: ivlOffset >= ivlCurrRange becomes
 * value >= (range << bits). Bytes past the end of the data read as zero and count in `overrun`. */
#ifndef ARSEG_HEVC_CABAC_H
#define ARSEG_HEVC_CABAC_H

#include <stddef.h>
#include <stdint.h>

/* Offsets of each syntax element's contexts in the context table. */
enum {
    CTX_SAO_MERGE = 0,
    CTX_SAO_TYPE = CTX_SAO_MERGE + 1,
    CTX_SPLIT_CU = CTX_SAO_TYPE + 1,
    CTX_TRANSQUANT_BYPASS = CTX_SPLIT_CU + 3,
    CTX_CU_SKIP = CTX_TRANSQUANT_BYPASS + 1,
    CTX_PRED_MODE = CTX_CU_SKIP + 3,
    CTX_PART_MODE = CTX_PRED_MODE + 1,
    CTX_PREV_INTRA_LUMA = CTX_PART_MODE + 4,
    CTX_INTRA_CHROMA = CTX_PREV_INTRA_LUMA + 1,
    CTX_RQT_ROOT_CBF = CTX_INTRA_CHROMA + 1,
    CTX_MERGE_FLAG = CTX_RQT_ROOT_CBF + 1,
    CTX_MERGE_IDX = CTX_MERGE_FLAG + 1,
    CTX_INTER_PRED_IDC = CTX_MERGE_IDX + 1,
    CTX_REF_IDX = CTX_INTER_PRED_IDC + 5,
    CTX_MVP_FLAG = CTX_REF_IDX + 2,
    CTX_SPLIT_TRANSFORM = CTX_MVP_FLAG + 1,
    CTX_CBF_LUMA = CTX_SPLIT_TRANSFORM + 3,
    CTX_CBF_CHROMA = CTX_CBF_LUMA + 2,
    CTX_MVD_GREATER0 = CTX_CBF_CHROMA + 5,
    CTX_MVD_GREATER1 = CTX_MVD_GREATER0 + 1,
    CTX_CU_QP_DELTA = CTX_MVD_GREATER1 + 1,
    CTX_TRANSFORM_SKIP = CTX_CU_QP_DELTA + 2,
    CTX_LAST_X = CTX_TRANSFORM_SKIP + 2,
    CTX_LAST_Y = CTX_LAST_X + 18,
    CTX_CODED_SUB_BLOCK = CTX_LAST_Y + 18,
    CTX_SIG_COEFF = CTX_CODED_SUB_BLOCK + 4,
    CTX_GREATER1 = CTX_SIG_COEFF + 44,
    CTX_GREATER2 = CTX_GREATER1 + 24,
    HEVC_NUM_CTX = CTX_GREATER2 + 6
};

typedef struct {
    const uint8_t *start, *p, *end;
    size_t overrun; /* bytes read past the end (as zeros) */
    uint32_t value, range;
    int bits;
} HevcCabac;

extern const uint8_t hevc_cabac_lps[64][4];
extern const uint8_t hevc_cabac_next_mps[64];
extern const uint8_t hevc_cabac_next_lps[64];
extern const uint8_t hevc_cabac_renorm[32];

/* Context state: (pStateIdx << 1) | valMps. init_type 0 (I), 1, 2 as 9.3.2.2 derives it. */
void hevc_cabac_init_contexts(uint8_t *ctx, int init_type, int slice_qp);

static inline void hevc_cabac_refill(HevcCabac *c) {
    while (c->bits < 8) {
        uint32_t byte = 0;
        if (c->p < c->end)
            byte = *c->p++;
        else
            c->overrun++;
        c->value = (c->value << 8) | byte;
        c->bits += 8;
    }
}

/* 9.3.2.5: starts the engine at data[0]. */
static inline void hevc_cabac_start(HevcCabac *c, const uint8_t *data, const uint8_t *end) {
    c->start = c->p = data;
    c->end = end;
    c->overrun = 0;
    c->value = 0;
    c->bits = -9; /* after the refill below: ivlOffset = the first 9 bits */
    c->range = 510;
    hevc_cabac_refill(c);
}

/* Bits the spec's decoder has consumed since the start (9 + the renormalisation shifts). */
static inline size_t hevc_cabac_consumed_bits(const HevcCabac *c) {
    return ((size_t)(c->p - c->start) + c->overrun) * 8 - (size_t)c->bits;
}

static inline int hevc_cabac_decision(HevcCabac *c, uint8_t *ctx) {
    int state = *ctx >> 1, mps = *ctx & 1, bin;
    uint32_t lps = hevc_cabac_lps[state][(c->range >> 6) & 3];
    c->range -= lps;
    uint32_t scaled = c->range << c->bits;
    if (c->value < scaled) {
        bin = mps;
        *ctx = (uint8_t)((hevc_cabac_next_mps[state] << 1) | mps);
        if (c->range < 256) {
            c->range <<= 1;
            c->bits--;
        }
    } else {
        c->value -= scaled;
        bin = !mps;
        int shift = hevc_cabac_renorm[lps >> 3];
        c->range = lps << shift;
        c->bits -= shift;
        *ctx = (uint8_t)((hevc_cabac_next_lps[state] << 1) | (state == 0 ? !mps : mps));
    }
    if (c->bits < 8)
        hevc_cabac_refill(c);
    return bin;
}

static inline int hevc_cabac_bypass(HevcCabac *c) {
    c->bits--;
    uint32_t scaled = c->range << c->bits;
    int bin = 0;
    if (c->value >= scaled) {
        c->value -= scaled;
        bin = 1;
    }
    if (c->bits < 8)
        hevc_cabac_refill(c);
    return bin;
}

static inline uint32_t hevc_cabac_bypass_bits(HevcCabac *c, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 1) | (uint32_t)hevc_cabac_bypass(c);
    return v;
}

/* k-th order Exp-Golomb bypass bins (9.3.3.3); -1 past 2^31. */
static inline int hevc_cabac_eg_k(HevcCabac *c, int k) {
    int value = 0;
    while (hevc_cabac_bypass(c)) {
        value += 1 << k;
        if (++k > 30)
            return -1;
    }
    return value + (int)hevc_cabac_bypass_bits(c, k);
}

static inline int hevc_cabac_terminate(HevcCabac *c) {
    c->range -= 2;
    if (c->value >= (c->range << c->bits))
        return 1;
    if (c->range < 256) {
        c->range <<= 1;
        c->bits--;
        if (c->bits < 8)
            hevc_cabac_refill(c);
    }
    return 0;
}

#endif
