/* CReFF's CPU inference for a band of output rows, in one call: the numbers of creff.py's plain path.

   For output rows [y0, y1) of one image (features channels-last: pixel-major, channels contiguous),
   row after row, each intermediate row computed once per band and kept in a ring while it is needed:
   1. warped = the keyframe feature sampled bilinearly at p + flow(p) (zero outside);
   2. K, V = depthwise 3x3 convolutions of warped (zero padding at the image border), into rings of the
      window's rows with r = window // 2 zero columns either side, so that the neighbour (dy, dx) of a
      pixel is a fixed offset away within its ring row and neighbours outside the image read zeros
      (logit 0, value 0);
   3. up = the LR feature resized bilinearly (align_corners=True) to the output size; Q = its depthwise
      3x3 convolution;
   4. out = up + sum_i softmax_i(<q, k_i>) v_i over the window x window neighbours.
   The sampling coordinates and weights are computed as _local_attention.py computes them (float32).

   Plain C called through ctypes on tensor data pointers (no Python API), so one build serves every
   Python. _creff_native_real.h holds the steps in one floating-point type; it is included here for
   float and for double. On x86-64 the float32 band has an AVX2 + FMA variant (intrinsics for the attention, the
   rest vectorised by the compiler for that target) beside the portable one, picked at run time from
   what the CPU supports: a build runs on any machine of its architecture. Built by setup.py (optional
   extension) or on first use into a per-machine cache (_native_build.py), with that file's flags.
*/
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WINDOW 15
#define MAX_NEIGHBOURS (MAX_WINDOW * MAX_WINDOW)
#define INLINE static inline __attribute__((always_inline))

/* One image's inputs and output, as _native_creff.py fills it (_native_build.ImageArgs: the same fields). */
typedef struct {
    const void *lr;        /* LR feature (lr_height * lr_width, channels) */
    const void *key;       /* keyframe feature (height * width, channels) */
    const void *flow;      /* backward flow in feature pixels (2, height, width), x then y; REAL like the rest */
    const void *weights;   /* depthwise 3x3 weights of Q, K, V: (3, 9, channels), tap-major */
    const void *biases;    /* their biases: (3, channels) */
    void *out;             /* (height * width, channels) */
    int64_t lr_height, lr_width, height, width, channels;
    int32_t window, exact_warp;
} creff_image;

/* exp(x) for x <= 0 (a logit minus the pixel's largest), relative error ~2e-7: x = m ln2 + r,
   |r| <= ln2 / 2, a degree-6 polynomial for exp(r) (the Cephes expf coefficients), times 2^m. */
INLINE float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x; /* exp(-87) ~ 1.6e-38 is still a normal float; the weight is ~0 anyway */
    float m = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - m * 0.693359375f;
    r = r - m * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)m + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define ARSEG_AVX2 1
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma"))) static inline

AVX2 __m256 exp8(__m256 x) { /* exp_nonpositive on 8 lanes */
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 m = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(m, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(m, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(m), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

AVX2 __m256 lane_sums8(const __m256 *a) { /* lane j = the sum of a[j]'s lanes */
    __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

AVX2 __m256 all_lanes(__m256 x, int take_max) { /* every lane = the max (or sum) of x's lanes */
    __m256 y = _mm256_permute2f128_ps(x, x, 0x01);
    x = take_max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
    y = _mm256_permute_ps(x, 0x4e);
    x = take_max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
    y = _mm256_permute_ps(x, 0xb1);
    return take_max ? _mm256_max_ps(x, y) : _mm256_add_ps(x, y);
}

/* One pixel's attention, float32, channels a multiple of 8: logits 8 neighbours at a time, softmax on
   8 lanes, values 64 channels at a time; result = addend + the weighted sum. `offsets` has
   `count` rounded up to 8 entries (the extra ones repeat the last neighbour; their weight is 0). */
AVX2 void attend_avx2(const float *query, const float *keys, const float *values, const int64_t *offsets,
                      int32_t count, int64_t channels, const float *addend, float *result) {
    const int32_t padded = (count + 7) & ~7;
    float weights[MAX_NEIGHBOURS + 8] __attribute__((aligned(32)));
    __m256 largest = _mm256_set1_ps(-INFINITY);
    for (int32_t i0 = 0; i0 < padded; i0 += 8) {
        __m256 acc[8];
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        for (int64_t c = 0; c < channels; c += 8) {
            const __m256 q = _mm256_loadu_ps(query + c);
            for (int j = 0; j < 8; j++) acc[j] = _mm256_fmadd_ps(q, _mm256_loadu_ps(keys + offsets[i0 + j] + c), acc[j]);
        }
        const __m256 logits = lane_sums8(acc);
        largest = _mm256_max_ps(largest, logits);
        _mm256_store_ps(weights + i0, logits);
    }
    largest = all_lanes(largest, 1);
    __m256 total = _mm256_setzero_ps();
    for (int32_t i0 = 0; i0 < padded; i0 += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(weights + i0), largest));
        if (i0 + 8 > count) {
            const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(count - i0), lane)));
        }
        total = _mm256_add_ps(total, e);
        _mm256_store_ps(weights + i0, e);
    }
    const __m256 norm = _mm256_div_ps(_mm256_set1_ps(1.0f), all_lanes(total, 0));
    for (int64_t c0 = 0; c0 < channels; c0 += 64) {
        const int lanes = channels - c0 >= 64 ? 8 : (int)((channels - c0) / 8);
        __m256 acc[8];
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        for (int32_t i = 0; i < count; i++) {
            const __m256 w = _mm256_set1_ps(weights[i]);
            const float *value = values + offsets[i] + c0;
            if (lanes == 8) {
                for (int j = 0; j < 8; j++) acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(value + 8 * j), acc[j]);
            } else {
                for (int j = 0; j < lanes; j++) acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(value + 8 * j), acc[j]);
            }
        }
        for (int j = 0; j < lanes; j++)
            _mm256_storeu_ps(result + c0 + 8 * j, _mm256_fmadd_ps(acc[j], norm, _mm256_loadu_ps(addend + c0 + 8 * j)));
    }
}
#endif

#define REAL float
#define NAME(x) x##_f32
#define EXP exp_nonpositive
#define FLOOR floorf
#include "_creff_native_real.h"
#undef REAL
#undef NAME
#undef EXP
#undef FLOOR
#define REAL double
#define NAME(x) x##_f64
#define EXP exp
#define FLOOR floor
#include "_creff_native_real.h"

#ifdef ARSEG_AVX2
__attribute__((target("avx2,fma"))) static int32_t band_f32_avx2(const creff_image *image, int64_t y0, int64_t y1,
                                                                   float *scratch) {
    return band_f32(image, y0, y1, scratch, 1);
}
#endif

static int32_t band_f32_portable(const creff_image *image, int64_t y0, int64_t y1, float *scratch) {
    return band_f32(image, y0, y1, scratch, 0);
}

/* The scratch memory (in REALs: floats or doubles) that arseg_creff_band_* needs for bands of at most
   `rows` rows of `image`. */
int64_t arseg_creff_scratch_size(const creff_image *image, int64_t rows) { return scratch_size_f32(image, rows); }

#ifndef ARSEG_SOURCE_DIGEST
#define ARSEG_SOURCE_DIGEST ""
#endif
/* The digest of the sources this build was made from (given by the build), so that a stale build
   is not loaded after the sources changed. */
const char *arseg_creff_source_digest(void) { return ARSEG_SOURCE_DIGEST; }

/* The float32 variant that runs here for `channels`: 1 AVX2 + FMA, 0 portable. */
int32_t arseg_creff_isa(int64_t channels) {
#ifdef ARSEG_AVX2
    __builtin_cpu_init();
    if (channels % 8 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    (void)channels;
    return 0;
}

/* Output rows [y0, y1) of `image`, with `scratch` of arseg_creff_scratch_size(image, y1 - y0) REALs.
   Returns 0, or -1 for a window that is not odd or above MAX_WINDOW, or an `isa` (from
   arseg_creff_isa) these channels cannot take. */
int32_t arseg_creff_band_f32(const creff_image *image, int64_t y0, int64_t y1, float *scratch, int32_t isa) {
#ifdef ARSEG_AVX2
    if (isa == 1) return image->channels % 8 ? -1 : band_f32_avx2(image, y0, y1, scratch);
#endif
    return isa == 0 ? band_f32_portable(image, y0, y1, scratch) : -1;
}

int32_t arseg_creff_band_f64(const creff_image *image, int64_t y0, int64_t y1, double *scratch) {
    return band_f64(image, y0, y1, scratch, 0);
}

/* The class of each source point of (classes, height, width) scores when it wins there by more than
   `margin`, else -1 (NaN scores never win). A pixel whose four interpolation corners name the same class
   c gets c without interpolating: its upsampled scores are convex combinations of the corners', and c
   beats every other class at each corner by more than any rounding of the interpolation can undo. */
static void point_labels(const float *scores, int64_t classes, int64_t height, int64_t width, int64_t class_stride,
                         int64_t row_stride, int64_t column_stride, float margin, int16_t *winners) {
    for (int64_t y = 0; y < height; y++) {
        for (int64_t x = 0; x < width; x++) {
            const float *point = scores + y * row_stride + x * column_stride;
            float best = point[0], second = -INFINITY;
            int64_t best_class = 0;
            for (int64_t k = 1; k < classes; k++) {
                const float value = point[k * class_stride];
                if (value > best) {
                    second = best;
                    best = value;
                    best_class = k;
                } else if (!(value <= second)) {
                    second = value;
                }
            }
            winners[y * width + x] = best - second > margin ? (int16_t)best_class : -1;
        }
    }
}

/* The largest |score| (infinity when a score is NaN or infinite). */
static float largest_magnitude(const float *scores, int64_t classes, int64_t height, int64_t width, int64_t class_stride,
                               int64_t row_stride, int64_t column_stride) {
    float largest = 0.0f;
    for (int64_t k = 0; k < classes; k++)
        for (int64_t y = 0; y < height; y++)
            for (int64_t x = 0; x < width; x++) {
                const float value = fabsf(scores[k * class_stride + y * row_stride + x * column_stride]);
                if (!(value <= largest)) largest = isnan(value) ? INFINITY : value;
            }
    return largest;
}

/* Labels of class scores: bilinear upsampling of (classes, height, width) float32 scores (any strides,
   in elements) to (out_height, out_width), then the first class of largest score at each pixel, as
   interpolate(..., align_corners) followed by argmax over classes computes them, without the
   upsampled scores. Source coordinates as PyTorch's upsample_bilinear2d: align_corners maps the
   corners onto each other, else src = scale * (dst + 0.5) - 0.5 (at least 0), scale = in / out unless
   `scale_h`/`scale_w` (1 / the scale factor) are positive. Pixels whose four corners agree by a clear
   margin (point_labels) take the corners' class; the others are interpolated and compared. The margin,
   4e-6 of the largest |score|, is four times what float32 rounding of a four-term interpolation can
   move the difference of two classes' scores, so both ways give the same labels. Returns 0; -1 for more
   than 256 classes. */
int32_t arseg_scores_to_labels_f32(const float *scores, int64_t classes, int64_t height, int64_t width,
                                   int64_t class_stride, int64_t row_stride, int64_t column_stride,
                                   int64_t out_height, int64_t out_width, int32_t align_corners, double scale_h,
                                   double scale_w, uint8_t *labels) {
    if (classes < 1 || classes > 256) return -1;
    float ratio_h, ratio_w;
    if (align_corners) {
        ratio_h = out_height > 1 ? (float)(height - 1) / (float)(out_height - 1) : 0.0f;
        ratio_w = out_width > 1 ? (float)(width - 1) / (float)(out_width - 1) : 0.0f;
    } else {
        ratio_h = scale_h > 0 ? (float)scale_h : (float)height / (float)out_height;
        ratio_w = scale_w > 0 ? (float)scale_w : (float)width / (float)out_width;
    }
    int16_t *winners = (int16_t *)malloc(sizeof(int16_t) * (size_t)(height * width));
    if (winners) {
        const float margin = 4e-6f * largest_magnitude(scores, classes, height, width, class_stride, row_stride, column_stride);
        point_labels(scores, classes, height, width, class_stride, row_stride, column_stride, margin, winners);
    }
    int64_t *x0 = (int64_t *)__builtin_alloca(sizeof(int64_t) * 2 * (size_t)out_width), *x1 = x0 + out_width;
    float *wx = (float *)__builtin_alloca(sizeof(float) * 2 * (size_t)out_width), *wx0 = wx, *wx1 = wx + out_width;
    for (int64_t x = 0; x < out_width; x++) {
        float src = align_corners ? ratio_w * (float)x : ratio_w * ((float)x + 0.5f) - 0.5f;
        src = src < 0.0f ? 0.0f : src;
        int64_t i = (int64_t)src;
        x0[x] = i;
        x1[x] = i + (i < width - 1 ? 1 : 0);
        wx1[x] = src - (float)i;
        wx0[x] = 1.0f - wx1[x];
    }
    for (int64_t y = 0; y < out_height; y++) {
        float src = align_corners ? ratio_h * (float)y : ratio_h * ((float)y + 0.5f) - 0.5f;
        src = src < 0.0f ? 0.0f : src;
        const int64_t y0 = (int64_t)src, y1 = y0 + (y0 < height - 1 ? 1 : 0);
        const float wy1 = src - (float)y0, wy0 = 1.0f - wy1;
        const float *row0 = scores + y0 * row_stride, *row1 = scores + y1 * row_stride;
        const int16_t *win0 = winners ? winners + y0 * width : NULL, *win1 = winners ? winners + y1 * width : NULL;
        uint8_t *out = labels + y * out_width;
        for (int64_t x = 0; x < out_width; x++) {
            if (winners) {
                const int16_t corner = win0[x0[x]];
                if (corner >= 0 && corner == win0[x1[x]] && corner == win1[x0[x]] && corner == win1[x1[x]]) {
                    out[x] = (uint8_t)corner;
                    continue;
                }
            }
            const float *a = row0 + x0[x] * column_stride, *b = row0 + x1[x] * column_stride;
            const float *c = row1 + x0[x] * column_stride, *d = row1 + x1[x] * column_stride;
            const float w00 = wy0 * wx0[x], w01 = wy0 * wx1[x], w10 = wy1 * wx0[x], w11 = wy1 * wx1[x];
            float best = -INFINITY;
            int64_t best_class = 0;
            for (int64_t k = 0; k < classes; k++) {
                const int64_t at = k * class_stride;
                const float value = w00 * a[at] + w01 * b[at] + w10 * c[at] + w11 * d[at];
                if (value > best || (k == 0)) {
                    best = value;
                    best_class = k;
                }
            }
            out[x] = (uint8_t)best_class;
        }
    }
    free(winners);
    return 0;
}
