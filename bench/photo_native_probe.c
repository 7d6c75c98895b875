/* What a small compiled helper would save on a portrait photo (bench/photo_native_probe.py).
   Not part of the app: a measurement, compiled by the probe with the system's C compiler. */
#include <emmintrin.h>
#include <stddef.h>
#include <stdint.h>

/* ROTATE_270 (EXIF orientation 6) of the columns [left, right) of a width x height image of
   4-byte pixels, in one pass: dst holds right - left rows of height pixels, row c being
   source column left + c read bottom to top. 4x4 blocks transposed in SSE2 registers;
   height and right - left must be multiples of 4. */
void turn270_band(const uint32_t *src, int width, int height, int left, int right,
                  uint32_t *dst) {
    int n = right - left;
    for (int y = 0; y + 4 <= height; y += 4) {
        const uint32_t *r0 = src + (size_t)y * width + left;
        const uint32_t *r1 = r0 + width, *r2 = r1 + width, *r3 = r2 + width;
        size_t at = (size_t)(height - 4 - y);
        for (int c = 0; c + 4 <= n; c += 4) {
            __m128i a = _mm_loadu_si128((const __m128i *)(r0 + c));
            __m128i b = _mm_loadu_si128((const __m128i *)(r1 + c));
            __m128i d = _mm_loadu_si128((const __m128i *)(r2 + c));
            __m128i e = _mm_loadu_si128((const __m128i *)(r3 + c));
            __m128i t0 = _mm_unpacklo_epi32(a, b), t1 = _mm_unpacklo_epi32(d, e);
            __m128i t2 = _mm_unpackhi_epi32(a, b), t3 = _mm_unpackhi_epi32(d, e);
            __m128i columns[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1),
                                  _mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)};
            for (int k = 0; k < 4; k++)
                _mm_storeu_si128((__m128i *)(dst + (size_t)(c + k) * height + at),
                                 _mm_shuffle_epi32(columns[k], 0x1B));
        }
    }
}

/* Box average of factor x factor blocks (factor <= 16) of an RGBX image whose sides are
   multiples of factor: factor rows summed in 16-bit lanes with SSE2, then factor pixels
   per channel. Rounds to nearest (Pillow's reduce may differ by 1). */
void reduce_box(const uint8_t *src, int width, int height, int factor, uint8_t *dst) {
    static uint16_t sums[4 * 16384];
    int out_width = width / factor, out_height = height / factor, bytes = 4 * width;
    uint32_t count = (uint32_t)(factor * factor);
    __m128i zero = _mm_setzero_si128();
    for (int oy = 0; oy < out_height; oy++) {
        const uint8_t *rows = src + (size_t)oy * factor * bytes;
        for (int i = 0; i + 16 <= bytes; i += 16) {
            __m128i lo = zero, hi = zero;
            for (int y = 0; y < factor; y++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(rows + (size_t)y * bytes + i));
                lo = _mm_add_epi16(lo, _mm_unpacklo_epi8(v, zero));
                hi = _mm_add_epi16(hi, _mm_unpackhi_epi8(v, zero));
            }
            _mm_storeu_si128((__m128i *)(sums + i), lo);
            _mm_storeu_si128((__m128i *)(sums + i + 8), hi);
        }
        uint8_t *out = dst + (size_t)oy * out_width * 4;
        for (int ox = 0; ox < out_width; ox++) {
            uint32_t r = 0, g = 0, b = 0;
            const uint16_t *p = sums + (size_t)ox * factor * 4;
            for (int k = 0; k < factor; k++) {
                r += p[4 * k];
                g += p[4 * k + 1];
                b += p[4 * k + 2];
            }
            out[4 * ox] = (uint8_t)((r + count / 2) / count);
            out[4 * ox + 1] = (uint8_t)((g + count / 2) / count);
            out[4 * ox + 2] = (uint8_t)((b + count / 2) / count);
            out[4 * ox + 3] = 255;
        }
    }
}
