/* residual_coding() (H.265 7.3.8.11) without its values: every bin is decoded so that the CABAC state
   stays in step, the coefficients themselves are discarded. */
#include <string.h>

#include "hevc_walk.h"

enum { SCAN_DIAG = 0, SCAN_HORIZ = 1, SCAN_VERT = 2 };

/* scan_xy[log2 side][scanIdx][i] = x | y << 4 of the i-th position of a (1 << log2)-square block;
   scan_inv[log2][scanIdx][y << log2 | x] = i. Horizontal and vertical scans exist up to 8x8 only. */
static uint8_t scan_xy[4][3][64];
static uint8_t scan_inv[4][3][64];
static int scans_ready;

static void build_scans(void) {
    for (int log2 = 0; log2 < 4; log2++) {
        int side = 1 << log2, i = 0, x = 0, y = 0;
        while (i < side * side) { /* up-right diagonal (6.5.3) */
            while (y >= 0) {
                if (x < side && y < side)
                    scan_xy[log2][SCAN_DIAG][i++] = (uint8_t)(x | y << 4);
                y--;
                x++;
            }
            y = x;
            x = 0;
        }
        for (int k = 0; k < side * side; k++) {
            scan_xy[log2][SCAN_HORIZ][k] = (uint8_t)((k % side) | (k / side) << 4);
            scan_xy[log2][SCAN_VERT][k] = (uint8_t)((k / side) | (k % side) << 4);
        }
        for (int s = 0; s < 3; s++)
            for (int k = 0; k < side * side; k++) {
                int p = scan_xy[log2][s][k];
                scan_inv[log2][s][((p >> 4) << log2) | (p & 15)] = (uint8_t)k;
            }
    }
    scans_ready = 1;
}

/* sigCtx (9.3.4.2.5) of each position of a 4x4 sub-block, by [chroma][block class][prevCsbf][first
   sub-block][y << 2 | x]. Block classes: 0 4x4, 1 8x8 diagonal scan, 2 8x8 horizontal/vertical, 3 larger. */
static const uint8_t CTX_IDX_MAP_4x4[16] = {0, 1, 4, 5, 2, 3, 4, 5, 6, 6, 8, 8, 7, 7, 8, 8};
static uint8_t sig_ctx_table[2][4][4][2][16];

static int sig_ctx_in_sub_block(int prev_csbf, int xp, int yp) {
    switch (prev_csbf) {
    case 0: return xp + yp == 0 ? 2 : xp + yp < 3 ? 1 : 0;
    case 1: return yp == 0 ? 2 : yp == 1 ? 1 : 0;
    case 2: return xp == 0 ? 2 : xp == 1 ? 1 : 0;
    default: return 2;
    }
}

static void build_sig_ctx(void) {
    for (int chroma = 0; chroma < 2; chroma++)
        for (int cls = 0; cls < 4; cls++)
            for (int prev = 0; prev < 4; prev++)
                for (int first = 0; first < 2; first++)
                    for (int pos = 0; pos < 16; pos++) {
                        int xp = pos & 3, yp = pos >> 2, ctx;
                        if (cls == 0)
                            ctx = CTX_IDX_MAP_4x4[pos];
                        else if (first && pos == 0)
                            ctx = 0;
                        else if (!chroma)
                            ctx = sig_ctx_in_sub_block(prev, xp, yp) + (first ? 0 : 3) + (cls == 1 ? 9 : cls == 2 ? 15 : 21);
                        else
                            ctx = sig_ctx_in_sub_block(prev, xp, yp) + (cls == 3 ? 12 : 9);
                        sig_ctx_table[chroma][cls][prev][first][pos] = (uint8_t)ctx;
                    }
}

void hevc_residual_tables_init(void) {
    if (!scans_ready) {
        build_scans();
        build_sig_ctx();
    }
}

static int decode_last_prefix(HevcCabac *c, uint8_t *ctx, int log2_size, int c_idx) {
    int max = (log2_size << 1) - 1, offset, shift;
    if (c_idx == 0) {
        offset = 3 * (log2_size - 2) + ((log2_size - 1) >> 2);
        shift = (log2_size + 1) >> 2;
    } else {
        offset = 15;
        shift = log2_size - 2;
    }
    int v = 0;
    while (v < max && hevc_cabac_decision(c, &ctx[offset + (v >> shift)]))
        v++;
    return v;
}

static int last_position(HevcCabac *c, int prefix) {
    if (prefix <= 3)
        return prefix;
    int bits = (prefix >> 1) - 1;
    return (1 << bits) * (2 + (prefix & 1)) + (int)hevc_cabac_bypass_bits(c, bits);
}

/* coeff_abs_level_remaining (9.3.3.11); -1 on an impossible prefix. */
static int decode_remaining(HevcCabac *c, int rice) {
    int prefix = 0;
    while (prefix < 30 && hevc_cabac_bypass(c))
        prefix++;
    if (prefix >= 30)
        return -1;
    if (prefix <= 3)
        return (prefix << rice) + (int)hevc_cabac_bypass_bits(c, rice);
    int bits = prefix - 3 + rice;
    if (bits > 24)
        return -1;
    return (((1 << (prefix - 3)) + 2) << rice) + (int)hevc_cabac_bypass_bits(c, bits);
}

static int scan_index(const HevcWalk *w, int log2_size, int c_idx) {
    if (!w->cu_intra || !(log2_size == 2 || (log2_size == 3 && c_idx == 0)))
        return SCAN_DIAG;
    int mode;
    if (c_idx == 0) {
        mode = w->cu_intra_modes[0];
        if (w->intra_split) {
            /* NxN: the mode of the prediction block that holds this transform block */
            int half = 1 << (w->cu_log2 - 1);
            int qx = w->tb_x >= w->cu_x + half, qy = w->tb_y >= w->cu_y + half;
            mode = w->cu_intra_modes[qy * 2 + qx];
        }
    } else {
        mode = w->cu_chroma_mode;
    }
    if (mode >= 6 && mode <= 14)
        return SCAN_VERT;
    if (mode >= 22 && mode <= 30)
        return SCAN_HORIZ;
    return SCAN_DIAG;
}

int hevc_residual_coding(HevcWalk *w, int x0, int y0, int log2_size, int c_idx) {
    HevcCabac *c = &w->cabac;
    uint8_t *ctx = w->ctx;
    if (w->pps->transform_skip_enabled && !w->cu_bypass && log2_size == 2)
        hevc_cabac_decision(c, &ctx[CTX_TRANSFORM_SKIP + (c_idx ? 1 : 0)]);
    int prefix_x = decode_last_prefix(c, &ctx[CTX_LAST_X], log2_size, c_idx);
    int prefix_y = decode_last_prefix(c, &ctx[CTX_LAST_Y], log2_size, c_idx);
    int last_x = last_position(c, prefix_x), last_y = last_position(c, prefix_y);
    w->tb_x = x0;
    w->tb_y = y0;
    int scan = scan_index(w, log2_size, c_idx);
    if (scan == SCAN_VERT) {
        int t = last_x;
        last_x = last_y;
        last_y = t;
    }
    int size = 1 << log2_size;
    if (last_x >= size || last_y >= size)
        return -1;
    int sb_log2 = log2_size - 2, sb_max = (1 << sb_log2) - 1;
    const uint8_t *sb_scan = scan_xy[sb_log2][scan], *pos_scan = scan_xy[2][scan];
    int last_sb = scan_inv[sb_log2][scan][((last_y >> 2) << sb_log2) | (last_x >> 2)];
    int last_pos = scan_inv[2][scan][((last_y & 3) << 2) | (last_x & 3)];
    uint8_t csbf[8][8]; /* [y][x] */
    memset(csbf, 0, sizeof(csbf));
    int greater1_carry = 1; /* greater1Ctx after the previous sub-block with coefficients */
    int block_class = log2_size == 2 ? 0 : log2_size == 3 ? (scan == SCAN_DIAG ? 1 : 2) : 3;
    int hide_signs = w->pps->sign_data_hiding && !w->cu_bypass;
    uint8_t *sig_ctx_base = &ctx[CTX_SIG_COEFF + (c_idx ? 27 : 0)];
    uint8_t *g1_base = &ctx[CTX_GREATER1 + (c_idx ? 16 : 0)];
    uint8_t *g2_base = &ctx[CTX_GREATER2 + (c_idx ? 4 : 0)];
    for (int i = last_sb; i >= 0; i--) {
        int xs = sb_scan[i] & 15, ys = sb_scan[i] >> 4;
        int infer_dc = 0;
        if (i < last_sb && i > 0) {
            int right = xs < sb_max ? csbf[ys][xs + 1] : 0, below = ys < sb_max ? csbf[ys + 1][xs] : 0;
            int inc = (right | below) + (c_idx ? 2 : 0);
            csbf[ys][xs] = (uint8_t)hevc_cabac_decision(c, &ctx[CTX_CODED_SUB_BLOCK + inc]);
            infer_dc = 1;
        } else {
            csbf[ys][xs] = 1;
        }
        if (!csbf[ys][xs])
            continue;
        int prev_csbf = (xs < sb_max ? csbf[ys][xs + 1] : 0) | ((ys < sb_max ? csbf[ys + 1][xs] : 0) << 1);
        uint8_t sig_n[16];
        int n_sig = 0, n_start = 15;
        if (i == last_sb) {
            sig_n[n_sig++] = (uint8_t)last_pos;
            n_start = last_pos - 1;
        }
        const uint8_t *sig_ctx = sig_ctx_table[c_idx > 0][block_class][prev_csbf][xs == 0 && ys == 0];
        for (int n = n_start; n >= 0; n--) {
            if (n == 0 && infer_dc) {
                sig_n[n_sig++] = 0;
                break;
            }
            int p = pos_scan[n];
            if (hevc_cabac_decision(c, &sig_ctx_base[sig_ctx[((p >> 4) << 2) | (p & 15)]])) {
                sig_n[n_sig++] = (uint8_t)n;
                infer_dc = 0;
            }
        }
        if (n_sig == 0)
            continue;
        int ctx_set = (i == 0 || c_idx > 0) ? 0 : 2;
        if (greater1_carry == 0)
            ctx_set++;
        int greater1_ctx = 1, first_g1 = -1;
        uint8_t g1[16] = {0};
        int n_g1 = n_sig < 8 ? n_sig : 8;
        for (int k = 0; k < n_g1; k++) {
            g1[k] = (uint8_t)hevc_cabac_decision(c, &g1_base[ctx_set * 4 + greater1_ctx]);
            if (g1[k]) {
                greater1_ctx = 0;
                if (first_g1 < 0)
                    first_g1 = k;
            } else if (greater1_ctx > 0 && greater1_ctx < 3) {
                greater1_ctx++;
            }
        }
        greater1_carry = greater1_ctx;
        int g2 = 0;
        if (first_g1 >= 0)
            g2 = hevc_cabac_decision(c, &g2_base[ctx_set]);
        int sign_hidden = hide_signs && sig_n[0] - sig_n[n_sig - 1] > 3;
        hevc_cabac_bypass_bits(c, n_sig - (sign_hidden ? 1 : 0));
        int rice = 0;
        for (int k = 0; k < n_sig; k++) {
            int base = 1 + (k < 8 ? g1[k] : 0) + (k == first_g1 ? g2 : 0);
            int threshold = k < 8 ? (k == first_g1 ? 3 : 2) : 1;
            if (base != threshold)
                continue;
            int rem = decode_remaining(c, rice);
            if (rem < 0)
                return -1;
            if (base + rem > 3 * (1 << rice) && rice < 4)
                rice++;
        }
    }
    return 0;
}
