/* State of the slice-data walk, shared by hevc_walk.c (coding tree) and hevc_residual.c. */
#ifndef ARSEG_HEVC_WALK_H
#define ARSEG_HEVC_WALK_H

#include "hevc_cabac.h"
#include "hevc_parse.h"

struct HevcWalk {
    HevcCabac cabac;
    uint8_t ctx[HEVC_NUM_CTX];
    uint8_t ctx_wpp[HEVC_NUM_CTX]; /* after the 2nd CTB of a row (WPP) */
    uint8_t ctx_ds[HEVC_NUM_CTX];  /* at the end of the previous slice segment */
    int ds_valid;
    HevcPictureSyntax *pic;
    const HevcSps *sps;
    const HevcPps *pps;
    const HevcSliceHeader *sh;
    int slice_idx;
    /* Per picture: SliceAddrRs of each CTB's slice (-1 before it is decoded). */
    int32_t *ctb_slice_addr;
    size_t cap_ctbs;
    /* Per 4x4 block: coding quadtree depth, cu_skip_flag, IntraPredModeY (INTRA_DC for non-intra and PCM). */
    uint8_t *ct_depth, *skip, *intra_mode;
    size_t cap_blocks;
    int stride4; /* 4x4 blocks per row */
    /* The coding unit being parsed. */
    int cu_x, cu_y, cu_log2, cu_intra, cu_part, cu_bypass;
    uint8_t cu_intra_modes[4], cu_chroma_mode;
    int cu_qp_delta_coded;
    int max_trafo_depth, intra_split;
    int tb_x, tb_y; /* the transform block being parsed */
};

void hevc_residual_tables_init(void);

/* transform_tree(x0, y0, xBase, yBase, log2TrafoSize, trafoDepth, blkIdx) of the current CU, with the
   parent's cbf_cb / cbf_cr; 0 or -1 on corrupt data. */
int hevc_transform_tree(HevcWalk *w, int x0, int y0, int x_base, int y_base, int log2_size, int depth,
                        int blk_idx, int parent_cb, int parent_cr);

/* coding_tree_unit() of the CTB at raster address ctb_rs; 0 or -1 on corrupt data. */
int hevc_walk_ctu(HevcWalk *w, int ctb_rs);
/* Whether (x_nb, y_nb) is available (6.4.1) from the CTB at ctb_rs. */
int hevc_walk_ctb_available(const HevcWalk *w, int ctb_rs, int x_nb, int y_nb);

/* residual_coding(x0, y0, log2TrafoSize, cIdx) of the current CU; 0 or -1 on corrupt data. */
int hevc_residual_coding(HevcWalk *w, int x0, int y0, int log2_size, int c_idx);

#endif
