/* Eq. 6-8 and Eq. 10's mean in one pass over each region's snippets (dcltal/ops/native/__init__.py).
 *
 * For region r = [lo, hi) of the rows of `keys` [S, d]:
 *   f_o[r]  = max_t keys[t]                                             (Eq. 6)
 *   w(t)    = ReLU(f_o[r] . keys[t] / (max(|f_o[r]|, eps_cos) * norms[t]))  (Eq. 7; norms clamped by the caller)
 *   att[r]  = sum_t w(t) values[t] / max(sum_t w(t), eps_att)           (Eq. 8's attended term)
 *   mean[r] = sum_t mean_values[t] / (hi - lo)                          (Eq. 10's local term)
 * Regions are visited in `order` (sorted by start, so neighbours share cached rows), those at positions
 * [first, last) of it; the caller splits the positions between threads. The key rows are read twice
 * (the max, then the cosines), so the sum over d runs in column blocks of BLOCK that stay in L1 between
 * the two reads. Rows are `*_stride` elements apart, columns contiguous.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256

#define DEFINE_REGION_POOL(NAME, T, SQRT)                                                              \
int NAME(const T *restrict keys, int64_t key_stride, const T *restrict norms, int64_t d,               \
         const T *restrict values, int64_t value_stride, int64_t e,                                    \
         const T *restrict mean_values, int64_t mean_stride, int64_t e2,                               \
         const int64_t *restrict lo, const int64_t *restrict hi, const int64_t *restrict order,        \
         int64_t first, int64_t last, T *restrict f_o, T *restrict att, T *restrict mean,              \
         T eps_cos, T eps_att) {                                                                       \
    int64_t longest = 1;                                                                               \
    for (int64_t i = first; i < last; i++)                                                             \
        if (hi[order[i]] - lo[order[i]] > longest) longest = hi[order[i]] - lo[order[i]];              \
    T *dots = malloc(longest * sizeof(T));                                                             \
    if (!dots) return 1;                                                                               \
    for (int64_t i = first; i < last; i++) {                                                           \
        const int64_t r = order[i], a = lo[r], b = hi[r];                                              \
        T *restrict fo = f_o + r * d;                                                                  \
        T square = 0;                                                                                  \
        memset(dots, 0, (b - a) * sizeof(T));                                                          \
        for (int64_t c0 = 0; c0 < d; c0 += BLOCK) {                                                    \
            const int64_t n = d - c0 < BLOCK ? d - c0 : BLOCK;                                         \
            T *restrict f = fo + c0;                                                                   \
            memcpy(f, keys + a * key_stride + c0, n * sizeof(T));                                      \
            for (int64_t t = a + 1; t < b; t++) {                                                      \
                const T *restrict row = keys + t * key_stride + c0;                                    \
                for (int64_t j = 0; j < n; j++) f[j] = f[j] > row[j] ? f[j] : row[j];                  \
            }                                                                                          \
            for (int64_t j = 0; j < n; j++) square += f[j] * f[j];                                     \
            for (int64_t t = a; t < b; t++) {                                                          \
                const T *restrict row = keys + t * key_stride + c0;                                    \
                T s = 0;                                                                               \
                for (int64_t j = 0; j < n; j++) s += f[j] * row[j];                                    \
                dots[t - a] += s;                                                                      \
            }                                                                                          \
        }                                                                                              \
        T q = SQRT(square);                                                                            \
        q = q > eps_cos ? q : eps_cos;                                                                 \
        T *restrict acc = att + r * e, *restrict macc = mean + r * e2;                                 \
        memset(acc, 0, e * sizeof(T));                                                                 \
        memset(macc, 0, e2 * sizeof(T));                                                               \
        T total = 0;                                                                                   \
        for (int64_t t = a; t < b; t++) {                                                              \
            const T w = dots[t - a] / q / norms[t];                                                    \
            if (w > 0) {                                                                               \
                const T *restrict v = values + t * value_stride;                                       \
                total += w;                                                                            \
                for (int64_t j = 0; j < e; j++) acc[j] += w * v[j];                                    \
            }                                                                                          \
            const T *restrict m = mean_values + t * mean_stride;                                       \
            for (int64_t j = 0; j < e2; j++) macc[j] += m[j];                                          \
        }                                                                                              \
        const T scale = 1 / (total > eps_att ? total : eps_att), inv_len = (T)1 / (T)(b - a);         \
        for (int64_t j = 0; j < e; j++) acc[j] *= scale;                                               \
        for (int64_t j = 0; j < e2; j++) macc[j] *= inv_len;                                           \
    }                                                                                                  \
    free(dots);                                                                                        \
    return 0;                                                                                          \
}

DEFINE_REGION_POOL(region_pool_f32, float, sqrtf)
DEFINE_REGION_POOL(region_pool_f64, double, sqrt)
