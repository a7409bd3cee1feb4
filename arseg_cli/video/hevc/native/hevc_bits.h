/* Exp-Golomb bit reader over an RBSP (emulation prevention bytes already removed). Reading past the
   end yields zero bits and sets `overrun`, so corrupt data never reads outside the buffer. */
#ifndef ARSEG_HEVC_BITS_H
#define ARSEG_HEVC_BITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *data;
    size_t size_bits, pos;
    int overrun;
} HevcBits;

static inline void hevc_bits_init(HevcBits *b, const uint8_t *data, size_t size) {
    b->data = data;
    b->size_bits = size * 8;
    b->pos = 0;
    b->overrun = 0;
}

static inline uint32_t hevc_bits_read(HevcBits *b, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        uint32_t bit = 0;
        if (b->pos < b->size_bits)
            bit = (b->data[b->pos >> 3] >> (7 - (b->pos & 7))) & 1;
        else
            b->overrun = 1;
        b->pos++;
        v = (v << 1) | bit;
    }
    return v;
}

static inline int hevc_bits_flag(HevcBits *b) { return (int)hevc_bits_read(b, 1); }

/* ue(v); values above 2^31 - 2 mark the stream as corrupt. */
static inline uint32_t hevc_bits_ue(HevcBits *b) {
    int zeros = 0;
    while (!hevc_bits_read(b, 1)) {
        if (++zeros > 31 || b->overrun) {
            b->overrun = 1;
            return 0;
        }
    }
    if (zeros == 0)
        return 0;
    uint32_t rest = hevc_bits_read(b, zeros);
    return (uint32_t)(((1ull << zeros) - 1) + rest);
}

static inline int32_t hevc_bits_se(HevcBits *b) {
    uint32_t k = hevc_bits_ue(b);
    return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

static inline void hevc_bits_skip(HevcBits *b, size_t n) {
    b->pos += n;
    if (b->pos > b->size_bits)
        b->overrun = 1;
}

static inline int hevc_bits_byte_aligned(const HevcBits *b) { return (b->pos & 7) == 0; }

/* Copies a NAL unit payload to dst without its emulation prevention bytes (0x000003 -> 0x0000);
   returns the RBSP size. epb_pos (may be NULL) receives the source offsets of the removed bytes,
   *n_epb their count (at most cap_epb are recorded). */
size_t hevc_unescape(const uint8_t *src, size_t n, uint8_t *dst, size_t *epb_pos, size_t cap_epb,
                     size_t *n_epb);

#endif
