/* CReFF in one floating-point type, REAL (coordinates too, as _local_attention.py computes them):
   included twice by _creff_native.c, which defines REAL, NAME(x) (a suffixed name), EXP and FLOOR. */

/* Along one axis of `size` pixels: the two neighbouring indices of `coordinate`, clamped into the axis,
   and their linear weights, zero for an index outside it (grid_sample's zero padding). */
INLINE void NAME(axis_corners)(REAL coordinate, int64_t size, int64_t index[2], REAL weight[2]) {
    REAL c = coordinate < -2 ? -2 : (coordinate > (REAL)size + 1 ? (REAL)size + 1 : coordinate);
    REAL low = FLOOR(c), frac = c - low;
    for (int j = 0; j < 2; j++) {
        REAL at = low + (REAL)j, w = j ? frac : 1 - frac;
        weight[j] = (at >= 0 && at <= (REAL)(size - 1)) ? w : 0;
        int64_t i = (int64_t)at;
        index[j] = i < 0 ? 0 : (i > size - 1 ? size - 1 : i);
    }
}

/* One pixel's attention, portable: result = addend + sum_i softmax_i(<query, k_i>) v_i. */
INLINE void NAME(attend)(const REAL *query, const REAL *keys, const REAL *values, const int64_t *offsets,
                         int32_t count, int64_t channels, const REAL *addend, REAL *result) {
    REAL weights[MAX_NEIGHBOURS], largest = -INFINITY, total = 0;
    for (int32_t i = 0; i < count; i++) {
        REAL sum = 0;
        for (int64_t c = 0; c < channels; c++) sum += query[c] * keys[offsets[i] + c];
        weights[i] = sum;
        largest = sum > largest ? sum : largest;
    }
    for (int32_t i = 0; i < count; i++) total += weights[i] = EXP(weights[i] - largest);
    for (int64_t c = 0; c < channels; c++) result[c] = 0;
    for (int32_t i = 0; i < count; i++) {
        const REAL w = weights[i];
        const REAL *value = values + offsets[i];
        for (int64_t c = 0; c < channels; c++) result[c] += w * value[c];
    }
    for (int64_t c = 0; c < channels; c++) result[c] = addend[c] + result[c] / total;
}

/* Row `y` of a bilinear sampling of `src` (src_height x src_width pixels) into `row` (width pixels):
   at (sx, sy) = the warp's coordinates when `flow` is set, else the align_corners=True resize's. */
INLINE void NAME(sample_row)(const creff_image *image, const REAL *src, int64_t src_height, int64_t src_width,
                             const REAL *flow, int64_t y, REAL *row) {
    const int64_t width = image->width, height = image->height, channels = image->channels;
    const REAL sy_resize = height > 1 ? (REAL)y * (REAL)((double)(src_height - 1) / (double)(height - 1)) : 0;
    const REAL x_step = width > 1 ? (REAL)((double)(src_width - 1) / (double)(width - 1)) : 0;
    /* the warp: scale * (pixel + flow) + offset, grid_sample's unnormalisation of the official grid */
    const int exact = image->exact_warp;
    const REAL scale_x = (REAL)((double)(exact ? src_width - 1 : src_width) / (double)(src_width > 1 ? src_width - 1 : 1));
    const REAL scale_y = (REAL)((double)(exact ? src_height - 1 : src_height) / (double)(src_height > 1 ? src_height - 1 : 1));
    const REAL offset = exact ? 0 : (REAL)-0.5;
    for (int64_t x = 0; x < width; x++) {
        REAL sx, sy;
        if (flow) {
            sx = scale_x * ((REAL)x + flow[y * width + x]) + offset;
            sy = scale_y * ((REAL)y + flow[(height + y) * width + x]) + offset;
        } else {
            sx = (REAL)x * x_step;
            sy = sy_resize;
        }
        int64_t xi[2], yi[2];
        REAL wx[2], wy[2];
        NAME(axis_corners)(sx, src_width, xi, wx);
        NAME(axis_corners)(sy, src_height, yi, wy);
        const REAL w00 = wy[0] * wx[0], w01 = wy[0] * wx[1], w10 = wy[1] * wx[0], w11 = wy[1] * wx[1];
        const REAL *p00 = src + (yi[0] * src_width + xi[0]) * channels, *p01 = src + (yi[0] * src_width + xi[1]) * channels;
        const REAL *p10 = src + (yi[1] * src_width + xi[0]) * channels, *p11 = src + (yi[1] * src_width + xi[1]) * channels;
        REAL *o = row + x * channels;
        for (int64_t c = 0; c < channels; c++) o[c] = w00 * p00[c] + w01 * p01[c] + w10 * p10[c] + w11 * p11[c];
    }
}

/* One row of the depthwise 3x3 convolution (weights (9, channels), zero padding at the image border)
   of the image rows above, at and below it (`rows`; NULL outside the image), into `out`. Taps outside
   the image read `zeros` (channels zeros), so every pixel runs the same 9-tap loop. */
INLINE void NAME(conv_row)(const REAL *const rows[3], int64_t width, int64_t channels, const REAL *weights,
                           const REAL *bias, const REAL *zeros, REAL *out) {
    for (int64_t x = 0; x < width; x++) {
        const REAL *in[9];
        for (int t = 0; t < 9; t++) {
            const REAL *row = rows[t / 3];
            const int64_t tx = x + t % 3 - 1;
            in[t] = (!row || tx < 0 || tx >= width) ? zeros : row + tx * channels;
        }
        REAL *o = out + x * channels;
        for (int64_t c = 0; c < channels; c++) o[c] = bias[c];
        for (int t = 0; t < 9; t++) {
            const REAL *a = in[t], *w = weights + t * channels;
            for (int64_t c = 0; c < channels; c++) o[c] += w[c] * a[c];
        }
    }
}

INLINE int64_t NAME(slot)(int64_t row, int64_t slots) { return ((row % slots) + slots) % slots; }

/* Rows y - 1, y, y + 1 of a ring of 3 rows (NULL outside the image). */
INLINE void NAME(three_rows)(REAL *ring, int64_t row_size, int64_t y, int64_t height, const REAL *rows[3]) {
    for (int t = 0; t < 3; t++) {
        const int64_t at = y - 1 + t;
        rows[t] = (at < 0 || at >= height) ? NULL : ring + NAME(slot)(at, 3) * row_size;
    }
}

/* Output rows [y0, y1), streaming: each row of the warped keyframe feature, of K and V and of the
   upsampled LR feature is computed once per band, into rings of the rows still needed (K and V: the
   window's rows, each with r zero columns either side, so that the neighbour (dy, dx) of a pixel is a
   fixed offset away and neighbours outside the image read zeros; warped and upsampled: 3 rows). */
INLINE int32_t NAME(band)(const creff_image *image, int64_t y0, int64_t y1, REAL *scratch, int avx2) {
    const int32_t window = image->window, r = window / 2, count = window * window;
    if (window < 1 || window > MAX_WINDOW || window % 2 == 0) return -1;
    const int64_t height = image->height, width = image->width, channels = image->channels;
    const int64_t padded_width = width + 2 * r, store_row = padded_width * channels, row_size = width * channels;
    REAL *k_ring = scratch, *v_ring = k_ring + window * store_row, *warped = v_ring + window * store_row;
    REAL *up = warped + 3 * row_size, *q_row = up + 3 * row_size, *zeros = q_row + row_size;
    memset(zeros, 0, sizeof(REAL) * channels);
    for (int64_t s = 0; s < window; s++) { /* the border columns; the rows' inner parts are written below */
        for (REAL *store = k_ring + s * store_row; store; store = store == k_ring + s * store_row ? v_ring + s * store_row : NULL) {
            memset(store, 0, sizeof(REAL) * r * channels);
            memset(store + (r + width) * channels, 0, sizeof(REAL) * r * channels);
        }
    }
    const REAL *weights = image->weights, *biases = image->biases;
    const REAL *rows[3];
    int64_t warped_done = y0 - r - 2, kv_done = y0 - r - 1, up_done = y0 - 2; /* the last row in each ring */
    int64_t offsets[MAX_NEIGHBOURS + 8];
    REAL *out = (REAL *)image->out;
    for (int64_t y = y0; y < y1; y++) {
        for (int64_t j = kv_done + 1; j <= y + r; j++) {
            REAL *k = k_ring + NAME(slot)(j, window) * store_row + r * channels;
            REAL *v = v_ring + NAME(slot)(j, window) * store_row + r * channels;
            if (j < 0 || j >= height) {
                memset(k, 0, sizeof(REAL) * row_size);
                memset(v, 0, sizeof(REAL) * row_size);
                continue;
            }
            for (int64_t w = (warped_done + 1 > j - 1 ? warped_done + 1 : j - 1); w <= j + 1 && w < height; w++) {
                if (w < 0) continue;
                NAME(sample_row)(image, image->key, height, width, image->flow, w, warped + NAME(slot)(w, 3) * row_size);
                warped_done = w;
            }
            NAME(three_rows)(warped, row_size, j, height, rows);
            NAME(conv_row)(rows, width, channels, weights + 9 * channels, biases + channels, zeros, k);
            NAME(conv_row)(rows, width, channels, weights + 18 * channels, biases + 2 * channels, zeros, v);
        }
        kv_done = y + r;
        for (int64_t u = (up_done + 1 > y - 1 ? up_done + 1 : y - 1); u <= y + 1 && u < height; u++) {
            if (u < 0) continue;
            NAME(sample_row)(image, image->lr, image->lr_height, image->lr_width, NULL, u, up + NAME(slot)(u, 3) * row_size);
            up_done = u;
        }
        NAME(three_rows)(up, row_size, y, height, rows);
        NAME(conv_row)(rows, width, channels, weights, biases, zeros, q_row);
        for (int32_t i = 0; i < count + 8; i++) {
            const int32_t n = i < count ? i : count - 1;
            offsets[i] = (NAME(slot)(y - r + n / window, window) * padded_width + n % window) * channels;
        }
        const REAL *up_row = rows[1];
        for (int64_t x = 0; x < width; x++) {
            const int64_t at = x * channels; /* the window's top-left neighbour, relative to each ring row */
            REAL *result = out + (y * width + x) * channels;
#if defined(ARSEG_AVX2)
            if (sizeof(REAL) == sizeof(float) && avx2) {
                attend_avx2((const float *)(q_row + at), (const float *)(k_ring + at), (const float *)(v_ring + at),
                            offsets, count, channels, (const float *)(up_row + at), (float *)result);
                continue;
            }
#endif
            NAME(attend)(q_row + at, k_ring + at, v_ring + at, offsets, count, channels, up_row + at, result);
        }
    }
    (void)avx2;
    return 0;
}

/* REALs of scratch memory a band needs (the caller's, reused between bands): the same for any band. */
INLINE int64_t NAME(scratch_size)(const creff_image *image, int64_t rows) {
    const int64_t r = image->window / 2, row_size = image->width * image->channels;
    (void)rows;
    return 2 * (int64_t)image->window * (image->width + 2 * r) * image->channels + 7 * row_size + image->channels;
}
