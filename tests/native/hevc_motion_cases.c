/* Hand-made pictures through the HEVC motion layer, for what libx265 streams never use: POC MSB wrap and
 * the prevTid0Pic rule, list initialisation and ref_pic_list_modification, long-term references with and
 * without MSB, the 16-bit wrap of mvp + mvd, zero merge candidates, the 8x4 bi-prediction restriction,
 * the parallel merge level, temporal candidates and long-term references.
 * tests/test_hevc_motion_native.py compiles and runs it; prints "pass N" or the first failed check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hevc_motion.h"

static int checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

enum { W = 64, H = 64, LOG2_CTB = 4, CTBS = (W >> LOG2_CTB) * (H >> LOG2_CTB) };

static HevcSps sps;
static HevcPps pps;
static int32_t rs_to_ts[CTBS], tile_ids[CTBS], ctb_slice[CTBS];

typedef struct {
    HevcPictureSyntax pic;
    HevcSliceHeader slice;
    HevcCuSyntax cus[4];
    HevcPuSyntax pus[4];
    HevcPuMotion out[8];
    int n_out, poc;
} Picture;

static void setup(void)
{
    sps.width = W;
    sps.height = H;
    sps.log2_ctb = LOG2_CTB;
    sps.log2_min_cb = 3;
    sps.log2_min_tb = 2;
    sps.ctb_w = W >> LOG2_CTB;
    sps.ctb_h = H >> LOG2_CTB;
    sps.log2_max_poc_lsb = 4;
    pps.log2_parallel_merge_level = 2;
    for (int i = 0; i < CTBS; i++) rs_to_ts[i] = i;
    pps.ctb_addr_rs_to_ts = rs_to_ts;
    pps.tile_id = tile_ids;
}

/* A picture of one slice (nal type, POC lsb, slice type); its short-term RPS lists deltas (negative
   ones first), all used. No CUs until the caller adds them. */
static void new_picture(Picture *p, int nal, int lsb, int slice_type, const int *deltas, int n_neg, int n_pos)
{
    memset(p, 0, sizeof(*p));
    p->pic.sps = &sps;
    p->pic.pps = &pps;
    p->pic.slices = &p->slice;
    p->pic.n_slices = 1;
    p->pic.cus = p->cus;
    p->pic.pus = p->pus;
    p->pic.ctb_slice_idx = ctb_slice;
    p->slice.nal_unit_type = nal;
    p->slice.poc_lsb = lsb;
    p->slice.slice_type = slice_type;
    p->slice.st_rps.num_negative = n_neg;
    p->slice.st_rps.num_positive = n_pos;
    for (int i = 0; i < n_neg + n_pos; i++) {
        p->slice.st_rps.delta_poc[i] = deltas[i];
        p->slice.st_rps.used[i] = 1;
    }
    p->slice.num_ref_idx_active[0] = p->slice.num_ref_idx_active[1] = 1;
    p->slice.max_num_merge_cand = 5;
    p->slice.collocated_from_l0 = 1;
}

/* One inter CU of size 8 << (log2 - 3) at (x, y) with one 2Nx2N PU. */
static HevcPuSyntax *add_cu(Picture *p, int x, int y, int log2, int part_mode)
{
    HevcCuSyntax *cu = &p->cus[p->pic.n_cus];
    cu->x0 = (uint16_t)x;
    cu->y0 = (uint16_t)y;
    cu->log2_size = (uint8_t)log2;
    cu->part_mode = (uint8_t)part_mode;
    HevcPuSyntax *pu = &p->pus[p->pic.n_pus++];
    pu->x = (uint16_t)x;
    pu->y = (uint16_t)y;
    pu->w = pu->h = (uint16_t)(1 << log2);
    pu->cu_index = (uint32_t)p->pic.n_cus++;
    pu->ref_idx[0] = pu->ref_idx[1] = -1;
    return pu;
}

static void run(HevcMotionState *s, Picture *p)
{
    char err[160] = "";
    int rc = hevc_motion_picture(s, &p->pic, p->out, &p->n_out, &p->poc, err, sizeof(err));
    if (rc != 0) fprintf(stderr, "rejected: %s\n", err);
    CHECK(rc == 0);
}

static int decode_poc(HevcMotionState *s, int nal, int lsb, int temporal_id)
{
    Picture p;
    new_picture(&p, nal, lsb, HEVC_SLICE_I, NULL, 0, 0);
    p.slice.temporal_id = temporal_id;
    run(s, &p);
    return p.poc;
}

static void poc_wraps_and_follows_prev_tid0(void)
{
    HevcMotionState *s = hevc_motion_new();
    CHECK(decode_poc(s, 19, 0, 0) == 0);  /* IDR */
    CHECK(decode_poc(s, 1, 5, 0) == 5);
    CHECK(decode_poc(s, 1, 12, 0) == 12);
    CHECK(decode_poc(s, 1, 2, 0) == 18);  /* 12 -> 2: the lsb wrapped */
    CHECK(decode_poc(s, 1, 10, 1) == 26); /* TemporalId 1: prevTid0Pic stays POC 18 */
    CHECK(decode_poc(s, 0, 3, 0) == 19);  /* from POC 18 (TRAIL_N: not a prevTid0Pic either) */
    CHECK(decode_poc(s, 1, 1, 0) == 17);  /* still from POC 18 */
    CHECK(decode_poc(s, 21, 7, 0) == 23); /* a CRA that does not start the stream keeps the MSB */
    hevc_motion_free(s);
}

static void lists_follow_the_rps_and_its_modification(void)
{
    HevcMotionState *s = hevc_motion_new();
    Picture p;
    const int deltas[3] = {-1, -2, -3};
    decode_poc(s, 19, 0, 0);
    for (int lsb = 1; lsb <= 3; lsb++) {
        new_picture(&p, 1, lsb, HEVC_SLICE_P, deltas, lsb < 3 ? lsb : 3, 0);
        run(s, &p);
    }
    /* POC 4: RefPicListTemp0 = 3 2 1 3 (repeated to num_ref_idx_active); modified by list_entry. */
    new_picture(&p, 1, 4, HEVC_SLICE_P, deltas, 3, 0);
    p.slice.num_ref_idx_active[0] = 4;
    p.slice.ref_pic_list_modification_flag[0] = 1;
    const int entries[4] = {2, 0, 1, 1};
    const int expected[4] = {1, 3, 2, 2};
    for (int i = 0; i < 4; i++) {
        p.slice.list_entry[0][i] = entries[i];
        HevcPuSyntax *pu = add_cu(&p, 16 * i, 0, 4, HEVC_PART_2Nx2N);
        pu->ref_idx[0] = (int8_t)i;
    }
    run(s, &p);
    CHECK(p.n_out == 4);
    for (int i = 0; i < 4; i++) CHECK(p.out[i].ref_poc[0] == expected[i]);
    hevc_motion_free(s);
}

static void long_term_references_with_and_without_msb(void)
{
    HevcMotionState *s = hevc_motion_new();
    Picture p;
    const int prev[1] = {-1};
    decode_poc(s, 19, 0, 0);
    new_picture(&p, 1, 1, HEVC_SLICE_P, prev, 1, 0);
    run(s, &p);
    for (int poc = 2; poc <= 17; poc++) {
        new_picture(&p, 1, poc & 15, HEVC_SLICE_P, prev, 1, 0);
        p.slice.num_long_term = 1; /* POC 0 stays, as a long-term picture */
        p.slice.lt_poc_lsb[0] = 0;
        p.slice.lt_msb_present[0] = poc >= 8;
        p.slice.lt_delta_poc_msb_cycle[0] = poc >= 16 ? 1 : 0;
        p.slice.lt_used[0] = 1;
        p.slice.num_ref_idx_active[0] = 2;
        HevcPuSyntax *pu = add_cu(&p, 0, 0, 4, HEVC_PART_2Nx2N);
        pu->ref_idx[0] = 1;
        run(s, &p);
        CHECK(p.poc == poc);
        CHECK(p.out[0].ref_poc[0] == 0); /* RefPicList0 = {poc - 1, 0 (long-term)} */
    }
    hevc_motion_free(s);
}

static void amvp_wraps_mvp_plus_mvd_to_16_bits(void)
{
    HevcMotionState *s = hevc_motion_new();
    Picture p;
    const int prev[1] = {-1};
    decode_poc(s, 19, 0, 0);
    new_picture(&p, 1, 1, HEVC_SLICE_P, prev, 1, 0);
    HevcPuSyntax *pu = add_cu(&p, 0, 0, 4, HEVC_PART_2Nx2N);
    pu->ref_idx[0] = 0;
    pu->mvd[0][0] = 40000;
    pu->mvd[0][1] = -40000;
    run(s, &p);
    CHECK(p.out[0].mv[0][0] == 40000 - 65536 && p.out[0].mv[0][1] == 65536 - 40000);
    CHECK(p.out[0].flags == HEVC_MOTION_L0);
    hevc_motion_free(s);
}

static void zero_candidates_and_the_8x4_restriction(void)
{
    HevcMotionState *s = hevc_motion_new();
    Picture p;
    const int refs[2] = {-1, -2};
    decode_poc(s, 19, 0, 0);
    new_picture(&p, 1, 1, HEVC_SLICE_P, refs, 1, 0);
    run(s, &p);
    /* P: the first CU (no neighbour, no TMVP) picks zero candidate 1: refIdx 1 = POC 0. */
    new_picture(&p, 1, 2, HEVC_SLICE_P, refs, 2, 0);
    p.slice.num_ref_idx_active[0] = 2;
    HevcPuSyntax *pu = add_cu(&p, 0, 0, 4, HEVC_PART_2Nx2N);
    pu->merge_flag = 1;
    pu->merge_idx = 1;
    run(s, &p);
    CHECK(p.out[0].flags == (HEVC_MOTION_MERGE | HEVC_MOTION_L0) && p.out[0].ref_poc[0] == 0);
    /* B: the zero candidate is bi-predictive, except on 8x4 PUs (the second CU takes the first's
       motion as its A1 candidate, restricted to list 0). */
    const int back2[1] = {-2};
    new_picture(&p, 1, 4, HEVC_SLICE_P, back2, 1, 0);
    run(s, &p); /* POC 4, which keeps POC 2 */
    const int around[2] = {-1, 1};
    new_picture(&p, 0, 3, HEVC_SLICE_B, around, 1, 1); /* POC 3: RefPicList0 = {2, 4}, RefPicList1 = {4, 2} */
    pu = add_cu(&p, 0, 0, 3, HEVC_PART_2Nx2N);
    pu->merge_flag = 1;
    pu = add_cu(&p, 8, 0, 3, HEVC_PART_2NxN);
    pu->h = 4;
    pu->merge_flag = 1;
    run(s, &p);
    CHECK(p.poc == 3);
    CHECK(p.out[0].flags == (HEVC_MOTION_MERGE | HEVC_MOTION_L0 | HEVC_MOTION_L1));
    CHECK(p.out[0].ref_poc[0] == 2 && p.out[0].ref_poc[1] == 4);
    CHECK(p.out[1].flags == (HEVC_MOTION_MERGE | HEVC_MOTION_L0) && p.out[1].ref_poc[1] == 0);
    hevc_motion_free(s);
}

/* POC 1 codes two PUs against long-term POC 0; in POC 2 a temporal candidate for a short-term target is
   unavailable (long-term mismatch: merge falls to the zero candidate), for a long-term one it is taken
   unscaled (AMVP predictor = the collocated vector). */
static void temporal_candidates_respect_long_term_marking(void)
{
    HevcMotionState *s = hevc_motion_new();
    Picture p;
    const int prev[1] = {-1};
    decode_poc(s, 19, 0, 0);
    new_picture(&p, 1, 1, HEVC_SLICE_P, prev, 0, 0);
    p.slice.num_long_term = 1;
    p.slice.lt_used[0] = 1; /* lt_poc_lsb 0: POC 0 */
    for (int x = 0; x <= 32; x += 32) {
        HevcPuSyntax *pu = add_cu(&p, x, 0, 4, HEVC_PART_2Nx2N);
        pu->ref_idx[0] = 0;
        pu->mvd[0][0] = 8;
        pu->mvd[0][1] = 4;
    }
    run(s, &p);
    CHECK(p.out[1].mv[0][0] == 8 && p.out[1].ref_poc[0] == 0);
    new_picture(&p, 1, 2, HEVC_SLICE_P, prev, 1, 0); /* RefPicList0 = {1, 0 (long-term)}, col = POC 1 */
    p.slice.num_long_term = 1;
    p.slice.lt_used[0] = 1;
    p.slice.num_ref_idx_active[0] = 2;
    p.slice.temporal_mvp_enabled = 1;
    HevcPuSyntax *pu = add_cu(&p, 0, 0, 4, HEVC_PART_2Nx2N);
    pu->merge_flag = 1;
    pu = add_cu(&p, 32, 0, 4, HEVC_PART_2Nx2N);
    pu->ref_idx[0] = 1;
    run(s, &p);
    CHECK(p.out[0].mv[0][0] == 0 && p.out[0].mv[0][1] == 0 && p.out[0].ref_poc[0] == 1);
    CHECK(p.out[1].mv[0][0] == 8 && p.out[1].mv[0][1] == 4 && p.out[1].ref_poc[0] == 0);
    hevc_motion_free(s);
}

/* CU1's left neighbour CU0 is a merge candidate, unless both lie in one parallel merge region. */
static void parallel_merge_level_hides_neighbours_in_the_same_region(void)
{
    const int prev[1] = {-1};
    for (int level = 2; level <= 4; level += 2) {
        HevcMotionState *s = hevc_motion_new();
        Picture p;
        pps.log2_parallel_merge_level = level;
        decode_poc(s, 19, 0, 0);
        new_picture(&p, 1, 1, HEVC_SLICE_P, prev, 1, 0);
        HevcPuSyntax *pu = add_cu(&p, 0, 0, 3, HEVC_PART_2Nx2N);
        pu->ref_idx[0] = 0;
        pu->mvd[0][0] = 4;
        pu->mvd[0][1] = 8;
        pu = add_cu(&p, 8, 0, 3, HEVC_PART_2Nx2N);
        pu->merge_flag = 1;
        run(s, &p);
        int mv_x = p.out[1].mv[0][0], mv_y = p.out[1].mv[0][1];
        CHECK(level == 2 ? mv_x == 4 && mv_y == 8 : mv_x == 0 && mv_y == 0);
        hevc_motion_free(s);
    }
    pps.log2_parallel_merge_level = 2;
}

int main(void)
{
    setup();
    poc_wraps_and_follows_prev_tid0();
    lists_follow_the_rps_and_its_modification();
    long_term_references_with_and_without_msb();
    amvp_wraps_mvp_plus_mvd_to_16_bits();
    zero_candidates_and_the_8x4_restriction();
    parallel_merge_level_hides_neighbours_in_the_same_region();
    temporal_candidates_respect_long_term_marking();
    printf("pass %d\n", checks);
    return 0;
}
