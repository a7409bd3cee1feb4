/* Random pictures through the HEVC motion layer, for AddressSanitizer / UBSan builds
 * (tests/test_hevc_motion_native.py compiles and runs it): mostly well-formed syntax with rare bad values,
 * so every derivation runs and every check is hit. Exits non-zero on a broken promise of the interface;
 * the sanitizers catch reads and writes outside the arrays.
 * Usage: hevc_motion_fuzz [pictures] [seed]; prints "ok N rejected M". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hevc_motion.h"

static unsigned long long rng_state;

static unsigned next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

static int below(int n) { return n > 0 ? (int)(next_random() % (unsigned)n) : 0; }
static int between(int lo, int hi) { return lo + below(hi - lo + 1); }
static int rarely(void) { return below(2000) == 0; }

static void random_geometry(HevcSps *sps, HevcPps *pps)
{
    free(pps->ctb_addr_rs_to_ts);
    free(pps->tile_id);
    memset(sps, 0, sizeof(*sps));
    memset(pps, 0, sizeof(*pps));
    sps->log2_ctb = between(4, 6);
    sps->log2_min_tb = 2;
    sps->log2_min_cb = 3;
    sps->width = 8 * between(2, 40);
    sps->height = 8 * between(2, 30);
    sps->ctb_w = (sps->width + (1 << sps->log2_ctb) - 1) >> sps->log2_ctb;
    sps->ctb_h = (sps->height + (1 << sps->log2_ctb) - 1) >> sps->log2_ctb;
    sps->log2_max_poc_lsb = between(4, 8);
    pps->log2_parallel_merge_level = between(2, 4);
    int n = sps->ctb_w * sps->ctb_h, columns = between(1, 3);
    pps->ctb_addr_rs_to_ts = malloc(sizeof(int32_t) * (size_t)n);
    pps->tile_id = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        pps->ctb_addr_rs_to_ts[i] = i;
        pps->tile_id[i] = i % sps->ctb_w * columns / sps->ctb_w; /* identity scan: tiles only as ids */
    }
}

static void random_slice(HevcSliceHeader *sh, const HevcSps *sps, int picture, int first, int n_ctb)
{
    int max_lsb = 1 << sps->log2_max_poc_lsb;
    sh->nal_unit_type = below(12) == 0 ? between(16, 21) : between(0, 1);
    sh->temporal_id = below(3) == 0;
    sh->slice_type = below(10) == 0 ? HEVC_SLICE_I : below(2);
    sh->poc_lsb = below(10) ? picture % max_lsb : below(max_lsb);
    if (below(50) == 0) sh->poc_lsb = between(-2, 300);
    HevcStRps *st = &sh->st_rps;
    st->num_negative = below(100) == 0 ? between(0, 40) : between(1, 4);
    st->num_positive = between(0, 3);
    for (int i = 0; i < HEVC_MAX_RPS_PICS; i++) {
        st->delta_poc[i] = i < st->num_negative ? -between(1, 3) - i : between(1, 3) + i;
        st->used[i] = below(4) != 0;
    }
    sh->num_long_term = below(4) == 0 ? between(0, 3) : 0;
    for (int i = 0; i < HEVC_MAX_LT; i++) {
        sh->lt_poc_lsb[i] = below(max_lsb);
        sh->lt_used[i] = (uint8_t)below(2);
        sh->lt_msb_present[i] = (uint8_t)below(2);
        sh->lt_delta_poc_msb_cycle[i] = between(0, 3);
    }
    sh->temporal_mvp_enabled = below(2);
    sh->num_ref_idx_active[0] = below(200) == 0 ? between(-1, 20) : between(1, 4);
    sh->num_ref_idx_active[1] = between(1, 4);
    for (int l = 0; l < 2; l++) {
        sh->ref_pic_list_modification_flag[l] = below(3) == 0;
        for (int i = 0; i < HEVC_MAX_REFS; i++) sh->list_entry[l][i] = below(500) ? 0 : between(0, 5);
    }
    sh->collocated_from_l0 = below(2);
    sh->collocated_ref_idx = below(30) ? 0 : between(0, 3);
    sh->max_num_merge_cand = below(200) == 0 ? 0 : between(2, 5);
    sh->slice_addr_rs = first ? 0 : below(n_ctb);
}

static void random_pu(HevcPuSyntax *pu, const HevcCuSyntax *cu, int part, int parts, int is_b, int max_merge)
{
    int size = 1 << cu->log2_size, half = size / 2, pm = cu->part_mode;
    pu->cu_index = 0; /* set by the caller */
    pu->part_idx = (uint8_t)part;
    pu->w = (uint16_t)(parts == 1 || pm == HEVC_PART_2NxN ? size : half);
    pu->h = (uint16_t)(parts == 1 || pm == HEVC_PART_Nx2N ? size : half);
    pu->x = (uint16_t)(cu->x0 + ((pm == HEVC_PART_Nx2N || pm == HEVC_PART_NxN) && (part & 1) ? half : 0));
    pu->y = (uint16_t)(cu->y0 + ((pm == HEVC_PART_2NxN && part) || (pm == HEVC_PART_NxN && part >= 2) ? half : 0));
    if (rarely()) pu->w = (uint16_t)between(0, 70);
    pu->merge_flag = (uint8_t)(cu->skip || below(2));
    pu->merge_idx = (uint8_t)(rarely() ? 4 : below(max_merge));
    pu->inter_pred_idc = (uint8_t)(is_b ? between(0, rarely() ? 5 : 2) : HEVC_PRED_L0);
    for (int l = 0; l < 2; l++) {
        pu->ref_idx[l] = (int8_t)(rarely() ? between(-3, 30) : between(0, 1));
        pu->mvp_flag[l] = (uint8_t)(rarely() ? 7 : below(2));
        pu->mvd[l][0] = between(-40000, 40000);
        pu->mvd[l][1] = between(-300, 300);
    }
}

/* Coding units of sizes 8..CTB at random aligned places (they may overlap: the layer must not care). */
static void random_units(HevcPictureSyntax *pic)
{
    const HevcSps *sps = pic->sps;
    pic->n_cus = between(0, 60);
    pic->cus = calloc((size_t)pic->n_cus + 1, sizeof(HevcCuSyntax));
    pic->pus = calloc(4 * (size_t)pic->n_cus + 1, sizeof(HevcPuSyntax));
    pic->n_pus = 0;
    for (int c = 0; c < pic->n_cus; c++) {
        HevcCuSyntax *cu = &pic->cus[c];
        int log2 = between(3, sps->log2_ctb);
        while ((1 << log2) > sps->width || (1 << log2) > sps->height) log2--;
        int size = 1 << log2;
        cu->log2_size = (uint8_t)log2;
        cu->x0 = (uint16_t)(rarely() ? next_random() : (unsigned)(size * below(sps->width / size)));
        cu->y0 = (uint16_t)(size * below(sps->height / size));
        cu->slice_idx = (uint16_t)(rarely() ? pic->n_slices : below(pic->n_slices));
        const HevcSliceHeader *sh = &pic->slices[cu->slice_idx < pic->n_slices ? cu->slice_idx : 0];
        cu->intra = sh->slice_type == HEVC_SLICE_I || below(4) == 0;
        cu->skip = !cu->intra && below(2);
        cu->part_mode = (uint8_t)(cu->skip ? HEVC_PART_2Nx2N : below(4));
        if (cu->intra) continue;
        int parts = cu->part_mode == HEVC_PART_2Nx2N ? 1 : cu->part_mode == HEVC_PART_NxN ? 4 : 2;
        for (int p = 0; p < parts; p++) {
            HevcPuSyntax *pu = &pic->pus[pic->n_pus++];
            random_pu(pu, cu, p, parts, sh->slice_type == HEVC_SLICE_B, sh->max_num_merge_cand);
            pu->cu_index = (uint32_t)c;
        }
    }
}

int main(int argc, char **argv)
{
    int pictures = argc > 1 ? atoi(argv[1]) : 20000;
    rng_state = 88172645463325252ULL + (argc > 2 ? strtoull(argv[2], NULL, 10) : 0);
    HevcMotionState *state = hevc_motion_new();
    HevcSps sps;
    HevcPps pps;
    memset(&pps, 0, sizeof(pps));
    int ok = 0, rejected = 0;
    for (int i = 0; i < pictures; i++) {
        if (i % 50 == 0) random_geometry(&sps, &pps);
        HevcPictureSyntax pic;
        memset(&pic, 0, sizeof(pic));
        pic.sps = &sps;
        pic.pps = &pps;
        int n_ctb = sps.ctb_w * sps.ctb_h;
        pic.n_slices = between(1, 3);
        pic.slices = calloc((size_t)pic.n_slices, sizeof(HevcSliceHeader));
        for (int s = 0; s < pic.n_slices; s++) random_slice(&pic.slices[s], &sps, i, s == 0, n_ctb);
        pic.ctb_slice_idx = malloc(sizeof(int32_t) * (size_t)n_ctb);
        for (int c = 0; c < n_ctb; c++) pic.ctb_slice_idx[c] = between(-1, pic.n_slices - 1);
        random_units(&pic);
        HevcPuMotion *out = malloc(sizeof(HevcPuMotion) * (size_t)(pic.n_pus + pic.n_cus + 1));
        int n_out = -1, poc = 0;
        char err[160] = "";
        if (hevc_motion_picture(state, &pic, out, &n_out, &poc, err, sizeof(err)) == 0) {
            ok++;
        } else {
            rejected++;
            if (!err[0] || strchr(err, '\n')) return fprintf(stderr, "a rejection without a one-line reason\n"), 1;
        }
        if (n_out < 0 || n_out > pic.n_pus + pic.n_cus) return fprintf(stderr, "record count %d\n", n_out), 1;
        (void)hevc_motion_rasl_skipped(state, &pic);
        free(out);
        free(pic.cus);
        free(pic.pus);
        free(pic.slices);
        free(pic.ctb_slice_idx);
    }
    hevc_motion_free(state);
    free(pps.ctb_addr_rs_to_ts);
    free(pps.tile_id);
    printf("ok %d rejected %d\n", ok, rejected);
    return 0;
}
