/* Vectorised tanh over float arrays (AVX or SSE on x86-64, scalar elsewhere):
 * the [13/6] rational approximation of sf_tanhf (flow_impl.h).  GCC -O2
 * does not if-convert the clamp, so the scalar loop stays scalar. */
#include "flow/flow_impl.h"

#if defined(__AVX__)
#include <immintrin.h>

static inline __m256 tanh8(__m256 x)
{
    const __m256 c = _mm256_set1_ps(7.99881172180175781f);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_sub_ps(_mm256_setzero_ps(), c)), c);
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_add_ps(_mm256_mul_ps(x2, _mm256_set1_ps(-2.76076847742355e-16f)), _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(4.89352455891786e-03f));
    p = _mm256_mul_ps(p, x);
    __m256 q = _mm256_add_ps(_mm256_mul_ps(x2, _mm256_set1_ps(1.19825839466702e-06f)), _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(4.89352518554385e-03f));
    return _mm256_div_ps(p, q);
}

void sf_flow_tanh(float *y, const float *add, size_t n)
{
    size_t i = 0;
    if (n >= 8 && n % 8) {
        /* the ragged tail as one vector overlapping the last full one, read
         * before the loop overwrites the overlap (short rows of degree
         * slices in training: no scalar tail) */
        __m256 t = _mm256_loadu_ps(y + n - 8);
        if (add) t = _mm256_add_ps(t, _mm256_loadu_ps(add + n - 8));
        t = tanh8(t);
        if (add)
            for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(y + i, tanh8(_mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(add + i))));
        else
            for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, tanh8(_mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + n - 8, t);
        return;
    }
    if (add)
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, tanh8(_mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(add + i))));
    else
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, tanh8(_mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = sf_tanhf(add ? y[i] + add[i] : y[i]);
}
#elif defined(__SSE2__)
#include <emmintrin.h>

static inline __m128 tanh4(__m128 x)
{
    const __m128 c = _mm_set1_ps(7.99881172180175781f);
    x = _mm_min_ps(_mm_max_ps(x, _mm_sub_ps(_mm_setzero_ps(), c)), c);
    const __m128 x2 = _mm_mul_ps(x, x);
    __m128 p = _mm_add_ps(_mm_mul_ps(x2, _mm_set1_ps(-2.76076847742355e-16f)), _mm_set1_ps(2.00018790482477e-13f));
    p = _mm_add_ps(_mm_mul_ps(p, x2), _mm_set1_ps(-8.60467152213735e-11f));
    p = _mm_add_ps(_mm_mul_ps(p, x2), _mm_set1_ps(5.12229709037114e-08f));
    p = _mm_add_ps(_mm_mul_ps(p, x2), _mm_set1_ps(1.48572235717979e-05f));
    p = _mm_add_ps(_mm_mul_ps(p, x2), _mm_set1_ps(6.37261928875436e-04f));
    p = _mm_add_ps(_mm_mul_ps(p, x2), _mm_set1_ps(4.89352455891786e-03f));
    p = _mm_mul_ps(p, x);
    __m128 q = _mm_add_ps(_mm_mul_ps(x2, _mm_set1_ps(1.19825839466702e-06f)), _mm_set1_ps(1.18534705686654e-04f));
    q = _mm_add_ps(_mm_mul_ps(q, x2), _mm_set1_ps(2.26843463243900e-03f));
    q = _mm_add_ps(_mm_mul_ps(q, x2), _mm_set1_ps(4.89352518554385e-03f));
    return _mm_div_ps(p, q);
}

void sf_flow_tanh(float *y, const float *add, size_t n)
{
    size_t i = 0;
    if (add)
        for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, tanh4(_mm_add_ps(_mm_loadu_ps(y + i), _mm_loadu_ps(add + i))));
    else
        for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, tanh4(_mm_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = sf_tanhf(add ? y[i] + add[i] : y[i]);
}
#else
void sf_flow_tanh(float *y, const float *add, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = sf_tanhf(add ? y[i] + add[i] : y[i]);
}
#endif
