/*
 * Packed-panel sgemm micro-kernel for the block-triangular products of MAF
 * training (maf_train.c).
 *
 * Why not sgemm: with hidden units ordered by degree the masked H x H
 * matrices are block-triangular (55% dense at D = 11), so OpenBLAS is called
 * once per degree group on thin slices and repacks the shared operand
 * (the batch activations) on every call: 17% of training time at SEDflow's
 * size, and the repacking is duplicated in every thread; and its value of
 * an element depends on where the element falls in the call, so slices cut
 * differently for 1 and 2 threads gave different bytes.  Here each thread
 * packs the weight panels of its own units once per layer, the activations
 * are read in place, and each micro-tile runs over exactly the inner range
 * its mask allows.  Every output element is one sequential chain of
 * multiply-adds over k, whatever the tile, thread or batch split: results
 * do not depend on the thread count.
 *
 * Layout (GotoBLAS / BLIS style): a B panel holds SF_GEMM_NR columns of the
 * right operand (P[k*NR + j]); the left operand's SF_GEMM_MR rows are read in
 * place (rows or columns of a row-major matrix: broadcasts need no packing).
 * A 6 x 16 tile keeps 12 AVX2 accumulators.
 */
#include <string.h>

#include "flow/flow_impl.h"
#include "flow/flow_simd.h"

#ifdef SF_FLOW_AVX2
/* Transpose the 8 x 8 block at S (rows i, columns k; row stride lds) into
 * P[k*w + i] (8 rows of 8 at stride w). */
static inline void transpose8(const float *S, long lds, float *P, int w)
{
    __m256 r0 = _mm256_loadu_ps(S), r1 = _mm256_loadu_ps(S + lds), r2 = _mm256_loadu_ps(S + 2 * lds),
           r3 = _mm256_loadu_ps(S + 3 * lds), r4 = _mm256_loadu_ps(S + 4 * lds), r5 = _mm256_loadu_ps(S + 5 * lds),
           r6 = _mm256_loadu_ps(S + 6 * lds), r7 = _mm256_loadu_ps(S + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    r4 = _mm256_shuffle_ps(t4, t6, 0x44), r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    r6 = _mm256_shuffle_ps(t5, t7, 0x44), r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(P, _mm256_permute2f128_ps(r0, r4, 0x20));
    _mm256_storeu_ps(P + w, _mm256_permute2f128_ps(r1, r5, 0x20));
    _mm256_storeu_ps(P + 2 * w, _mm256_permute2f128_ps(r2, r6, 0x20));
    _mm256_storeu_ps(P + 3 * w, _mm256_permute2f128_ps(r3, r7, 0x20));
    _mm256_storeu_ps(P + 4 * w, _mm256_permute2f128_ps(r0, r4, 0x31));
    _mm256_storeu_ps(P + 5 * w, _mm256_permute2f128_ps(r1, r5, 0x31));
    _mm256_storeu_ps(P + 6 * w, _mm256_permute2f128_ps(r2, r6, 0x31));
    _mm256_storeu_ps(P + 7 * w, _mm256_permute2f128_ps(r3, r7, 0x31));
}
#endif

void sf_gemm_pack(int w, int r, int K, const float *S, int lds, int trans, float *P)
{
    if (trans) {
        for (int k = 0; k < K; k++) {
            const float *s = S + (size_t)k * lds;
            float *p = P + (size_t)k * w;
            int i = 0;
#ifdef SF_FLOW_AVX2
            for (; i + 8 <= r; i += 8) _mm256_storeu_ps(p + i, _mm256_loadu_ps(s + i));
#endif
            for (; i < r; i++) p[i] = s[i];
            for (; i < w; i++) p[i] = 0.f;
        }
        return;
    }
    int i0 = 0;
#ifdef SF_FLOW_AVX2
    /* whole 8 x 8 blocks by register transposes (row blocks of 8 inside the panel) */
    if (w % 8 == 0) {
        const int r8 = r / 8 * 8, k8 = K / 8 * 8;
        for (int i = 0; i < r8; i += 8)
            for (int k = 0; k < k8; k += 8) transpose8(S + (size_t)i * lds + k, lds, P + (size_t)k * w + i, w);
        for (int i = 0; i < r8; i++) /* the K tail of those rows */
            for (int k = k8; k < K; k++) P[(size_t)k * w + i] = S[(size_t)i * lds + k];
        i0 = r8;
    }
#endif
    for (int i = i0; i < r; i++) {
        const float *s = S + (size_t)i * lds;
        for (int k = 0; k < K; k++) P[(size_t)k * w + i] = s[k];
    }
    for (int i = r; i < w; i++)
        for (int k = 0; k < K; k++) P[(size_t)k * w + i] = 0.f;
}

/* Write the accumulated tile acc (MR x NR, row-major) into C. */
static void store_tile(const float *acc, float *C, int ldc, int mr, int nr, const float *bias, const int *ncol)
{
    for (int i = 0; i < mr; i++) {
        int n = ncol && ncol[i] < nr ? ncol[i] : nr;
        float *c = C + (size_t)i * ldc;
        const float *a = acc + i * SF_GEMM_NR;
        if (bias)
            for (int j = 0; j < n; j++) c[j] = a[j] + bias[j];
        else
            for (int j = 0; j < n; j++) c[j] = a[j];
    }
}

/* Both A layouts through one body: A(i, k) = A[i*ai + k*ak]; inlined with a
 * constant unit stride for rows (ai, 1) and for columns (1, ak) of a
 * row-major matrix.  Rows past mr repeat row mr-1 (in bounds; never stored). */
#ifdef SF_FLOW_AVX2
static inline __attribute__((always_inline)) void tile_body(int K, const float *A, long ai, long ak, int mr,
                                                            const float *B, int ldb, float *t)
{
    const float *a0 = A, *a1 = A + (mr > 1 ? 1 : 0) * ai, *a2 = A + (mr > 2 ? 2 : mr - 1) * ai,
                *a3 = A + (mr > 3 ? 3 : mr - 1) * ai, *a4 = A + (mr > 4 ? 4 : mr - 1) * ai,
                *a5 = A + (mr > 5 ? 5 : mr - 1) * ai;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
           c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
    for (long k = 0; k < K; k++) {
        const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
        const long o = k * ak;
        __m256 a = _mm256_broadcast_ss(a0 + o);
        c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(a1 + o);
        c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(a2 + o);
        c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(a3 + o);
        c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(a4 + o);
        c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(a5 + o);
        c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
        B += ldb;
    }
    _mm256_storeu_ps(t, c00), _mm256_storeu_ps(t + 8, c01);
    _mm256_storeu_ps(t + 16, c10), _mm256_storeu_ps(t + 24, c11);
    _mm256_storeu_ps(t + 32, c20), _mm256_storeu_ps(t + 40, c21);
    _mm256_storeu_ps(t + 48, c30), _mm256_storeu_ps(t + 56, c31);
    _mm256_storeu_ps(t + 64, c40), _mm256_storeu_ps(t + 72, c41);
    _mm256_storeu_ps(t + 80, c50), _mm256_storeu_ps(t + 88, c51);
}
#else
static inline void tile_body(int K, const float *A, long ai, long ak, int mr, const float *B, int ldb, float *t)
{
    for (int i = 0; i < SF_GEMM_MR * SF_GEMM_NR; i++) t[i] = 0.f;
    for (int i = 0; i < mr; i++)
        for (long k = 0; k < K; k++)
            for (int j = 0; j < SF_GEMM_NR; j++) t[i * SF_GEMM_NR + j] += A[i * ai + k * ak] * B[k * ldb + j];
}
#endif

void sf_gemm_tile(int K, const float *A, long ai, long ak, const float *B, int ldb, float *C, int ldc, int mr, int nr,
                  const float *bias, const int *ncol)
{
    float t[SF_GEMM_MR * SF_GEMM_NR];
    if (ak == 1)
        tile_body(K, A, ai, 1, mr, B, ldb, t); /* rows of a row-major matrix */
    else
        tile_body(K, A, 1, ak, mr, B, ldb, t); /* packed panels (ak = MR) or columns of one */
    store_tile(t, C, ldc, mr, nr, bias, ncol);
}
