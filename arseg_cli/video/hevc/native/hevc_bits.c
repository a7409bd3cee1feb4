/* hevc_bits.h's out-of-line helpers: emulation prevention removal and error messages. */
#include <stdarg.h>
#include <stdio.h>

#include "hevc_parse.h"

int hevc_fail(char *err, size_t err_len, int code, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

size_t hevc_unescape(const uint8_t *src, size_t n, uint8_t *dst, size_t *epb_pos, size_t cap_epb,
                     size_t *n_epb) {
    size_t out = 0, zeros = 0, removed = 0;
    for (size_t i = 0; i < n; i++) {
        if (zeros >= 2 && src[i] == 3) {
            if (epb_pos && removed < cap_epb)
                epb_pos[removed] = i;
            removed++;
            zeros = 0;
            continue;
        }
        zeros = src[i] == 0 ? zeros + 1 : 0;
        dst[out++] = src[i];
    }
    if (n_epb)
        *n_epb = removed;
    return out;
}

