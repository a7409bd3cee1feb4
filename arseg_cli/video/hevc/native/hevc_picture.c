/* NAL units to pictures: splits access units, keeps the parameter sets, parses slice headers and runs the
   slice-data walk into one HevcPictureSyntax per picture. */
#include <stdlib.h>
#include <string.h>

#include "hevc_parse.h"
#include "hevc_parser.h"

#define MAX_ENTRY_POINTS 4096

struct HevcParser {
    HevcSps sps[HEVC_MAX_SPS];
    HevcPps pps[HEVC_MAX_PPS];
    HevcWalk *walk;
    HevcPictureSyntax pic;
    int pic_open, after_eos;
    int32_t *ctb_map;
    size_t cap_ctb_map;
    uint8_t *rbsp;
    size_t cap_rbsp, *epb, cap_epb;
    uint32_t entry_points[MAX_ENTRY_POINTS];
};

HevcParser *hevc_parser_new(void) {
    HevcParser *p = calloc(1, sizeof(HevcParser));
    if (!p)
        return NULL;
    p->walk = hevc_walk_new();
    if (!p->walk) {
        free(p);
        return NULL;
    }
    return p;
}

void hevc_parser_free(HevcParser *p) {
    if (!p)
        return;
    for (int i = 0; i < HEVC_MAX_PPS; i++)
        hevc_pps_release(&p->pps[i]);
    hevc_walk_free(p->walk);
    free(p->pic.slices);
    free(p->pic.cus);
    free(p->pic.pus);
    free(p->ctb_map);
    free(p->rbsp);
    free(p->epb);
    free(p);
}

static int finish_picture(HevcParser *p, HevcPictureCallback cb, void *opaque, char *err, size_t err_len) {
    if (!p->pic_open)
        return HEVC_OK;
    p->pic_open = 0;
    int n_ctbs = p->pic.sps->ctb_w * p->pic.sps->ctb_h;
    for (int i = 0; i < n_ctbs; i++)
        if (p->pic.ctb_slice_idx[i] < 0)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "incomplete HEVC picture (CTB %d missing)", i);
    int rc = cb ? cb(opaque, &p->pic, err, err_len) : 0;
    p->after_eos = 0;
    return rc;
}

static int begin_picture(HevcParser *p, const HevcSliceHeader *sh, char *err, size_t err_len) {
    HevcPps *pps = &p->pps[sh->pps_id];
    const HevcSps *sps = &p->sps[pps->sps_id];
    int rc = hevc_pps_activate(pps, sps, err, err_len);
    if (rc != HEVC_OK)
        return rc;
    size_t n_ctbs = (size_t)sps->ctb_w * (size_t)sps->ctb_h;
    if (n_ctbs > p->cap_ctb_map) {
        free(p->ctb_map);
        p->ctb_map = malloc(n_ctbs * sizeof(int32_t));
        p->cap_ctb_map = p->ctb_map ? n_ctbs : 0;
        if (!p->ctb_map)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "out of memory");
    }
    for (size_t i = 0; i < n_ctbs; i++)
        p->ctb_map[i] = -1;
    p->pic.sps = sps;
    p->pic.pps = pps;
    p->pic.n_slices = p->pic.n_cus = p->pic.n_pus = p->pic.n_pcm_cus = 0;
    p->pic.ctb_slice_idx = p->ctb_map;
    p->pic.after_eos = p->after_eos;
    p->pic_open = 1;
    return hevc_walk_begin_picture(p->walk, &p->pic, err, err_len);
}

/* RBSP offset of the raw NAL offset raw (epb: sorted raw offsets of the removed bytes). */
static size_t rbsp_offset(const size_t *epb, size_t n_epb, size_t raw) {
    size_t k = 0;
    while (k < n_epb && epb[k] < raw)
        k++;
    return raw - k;
}

static size_t raw_offset(const size_t *epb, size_t n_epb, size_t rbsp) {
    size_t k = 0;
    while (k < n_epb && epb[k] <= rbsp + k)
        k++;
    return rbsp + k;
}

static int parse_slice(HevcParser *p, const uint8_t *nal, size_t size, int type, int temporal_id,
                       HevcPictureCallback cb, void *opaque, char *err, size_t err_len) {
    size_t n_epb = 0;
    size_t rbsp_size = hevc_unescape(nal, size, p->rbsp, p->epb, p->cap_epb, &n_epb);
    HevcBits b;
    hevc_bits_init(&b, p->rbsp + 2, rbsp_size - 2);
    int first = rbsp_size > 2 && (p->rbsp[2] & 0x80);
    if (first) {
        int rc = finish_picture(p, cb, opaque, err, err_len);
        if (rc != HEVC_OK)
            return rc;
    } else if (!p->pic_open) {
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC slice segment without the start of its picture");
    }
    const HevcSliceHeader *prev = first || p->pic.n_slices == 0 ? NULL : &p->pic.slices[p->pic.n_slices - 1];
    HevcSliceHeader sh;
    int rc = hevc_parse_slice_header(&b, type, temporal_id, p->sps, p->pps, prev, &sh, p->entry_points,
                                     MAX_ENTRY_POINTS, err, err_len);
    if (rc != HEVC_OK)
        return rc;
    if (first && (rc = begin_picture(p, &sh, err, err_len)) != HEVC_OK)
        return rc;
    if (sh.pps_id != p->pic.pps->id)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "HEVC slices of one picture use different PPSs");
    if (p->pic.n_slices >= p->pic.cap_slices) {
        int cap = p->pic.cap_slices ? p->pic.cap_slices * 2 : 16;
        HevcSliceHeader *grown = realloc(p->pic.slices, (size_t)cap * sizeof(HevcSliceHeader));
        if (!grown)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "out of memory");
        p->pic.slices = grown;
        p->pic.cap_slices = cap;
    }
    p->pic.slices[p->pic.n_slices++] = sh;
    size_t data_offset = 2 + b.pos / 8;
    /* Entry point offsets count the emulation prevention bytes: turn them into RBSP substream sizes. */
    size_t raw = raw_offset(p->epb, n_epb, data_offset);
    for (int i = 0; i < sh.num_entry_points; i++) {
        size_t raw_next = raw + p->entry_points[i];
        if (raw_next >= size)
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC slice header (entry point)");
        p->entry_points[i] = (uint32_t)(rbsp_offset(p->epb, n_epb, raw_next) - rbsp_offset(p->epb, n_epb, raw));
        raw = raw_next;
    }
    return hevc_walk_slice(p->walk, &p->pic, p->pic.n_slices - 1, p->rbsp, rbsp_size, data_offset,
                           p->entry_points, sh.num_entry_points, err, err_len);
}

static int parse_parameter_set(HevcParser *p, const uint8_t *nal, size_t size, int type, char *err,
                               size_t err_len) {
    size_t rbsp_size = hevc_unescape(nal, size, p->rbsp, NULL, 0, NULL);
    HevcBits b;
    hevc_bits_init(&b, p->rbsp + 2, rbsp_size - 2);
    if (type == 33) {
        HevcSps sps;
        int rc = hevc_parse_sps(&b, &sps, err, err_len);
        if (rc != HEVC_OK)
            return rc;
        if (!(p->pic_open && p->pic.sps == &p->sps[sps.id]))
            p->sps[sps.id] = sps;
        return HEVC_OK;
    }
    HevcPps pps;
    int rc = hevc_parse_pps(&b, &pps, err, err_len);
    if (rc != HEVC_OK)
        return rc;
    if (!(p->pic_open && p->pic.pps == &p->pps[pps.id])) {
        hevc_pps_release(&p->pps[pps.id]);
        p->pps[pps.id] = pps;
    }
    return HEVC_OK;
}

static int parse_nal(HevcParser *p, const uint8_t *nal, size_t size, HevcPictureCallback cb, void *opaque,
                     char *err, size_t err_len) {
    if (size < 2)
        return HEVC_OK;
    if (nal[0] & 0x80)
        return hevc_fail(err, err_len, HEVC_ERR_STREAM, "corrupt HEVC NAL unit header");
    int type = (nal[0] >> 1) & 63, layer = ((nal[0] & 1) << 5) | (nal[1] >> 3), tid = (nal[1] & 7) - 1;
    if (layer != 0)
        return HEVC_OK;
    if (size > p->cap_rbsp) {
        free(p->rbsp);
        free(p->epb);
        p->rbsp = malloc(size + 16);
        p->epb = malloc((size / 3 + 1) * sizeof(size_t));
        p->cap_rbsp = size;
        p->cap_epb = size / 3 + 1;
        if (!p->rbsp || !p->epb) {
            p->cap_rbsp = p->cap_epb = 0;
            return hevc_fail(err, err_len, HEVC_ERR_STREAM, "out of memory");
        }
    }
    if (type <= 9 || (type >= 16 && type <= 21))
        return parse_slice(p, nal, size, type, tid, cb, opaque, err, err_len);
    if (type == 33 || type == 34)
        return parse_parameter_set(p, nal, size, type, err, err_len);
    if (type == 36 || type == 37) { /* end of sequence / bitstream */
        int rc = finish_picture(p, cb, opaque, err, err_len);
        p->after_eos = 1;
        return rc;
    }
    return HEVC_OK;
}

int hevc_parser_parse(HevcParser *p, const uint8_t *data, size_t size, int nal_length_size,
                      HevcPictureCallback on_picture, void *opaque, char *err, size_t err_len) {
    int rc = HEVC_OK;
    size_t pos = 0;
    if (nal_length_size > 0) {
        while (rc == HEVC_OK && pos + (size_t)nal_length_size <= size) {
            size_t len = 0;
            for (int i = 0; i < nal_length_size; i++)
                len = (len << 8) | data[pos + (size_t)i];
            pos += (size_t)nal_length_size;
            if (len > size - pos) {
                rc = hevc_fail(err, err_len, HEVC_ERR_STREAM, "truncated HEVC NAL unit");
                break;
            }
            rc = parse_nal(p, data + pos, len, on_picture, opaque, err, err_len);
            pos += len;
        }
    } else {
        size_t start = SIZE_MAX;
        for (;;) {
            size_t next = pos;
            while (next + 2 < size && !(data[next] == 0 && data[next + 1] == 0 && data[next + 2] == 1))
                next++;
            int found = next + 2 < size;
            size_t nal_end = found ? next : size;
            if (start != SIZE_MAX && rc == HEVC_OK) {
                while (nal_end > start && data[nal_end - 1] == 0) /* trailing_zero_8bits */
                    nal_end--;
                rc = parse_nal(p, data + start, nal_end - start, on_picture, opaque, err, err_len);
            }
            if (!found || rc != HEVC_OK)
                break;
            start = next + 3;
            pos = start;
        }
    }
    if (rc == HEVC_OK)
        rc = finish_picture(p, on_picture, opaque, err, err_len);
    else
        p->pic_open = 0;
    return rc;
}
