/*
 * Small-batch dense layer y = b + x W over column-panel-packed weights
 * (see emu_gemm.h for the layout and the summation-order guarantee).
 *
 * AVX2+FMA: a register tile of MR rows x NP panels keeps MR x 2 NP ymm
 * accumulators (at most 12 of the 16 registers) and, per input i, loads the
 * 2 NP weight vectors W[i, tile] once and broadcasts x[r, i] per row.  The
 * tile shapes are compile-time constants (TILE_FN instantiates them), so the
 * loops over rows and vectors unroll into straight-line FMAs.
 *
 * Loop order (sf_emu_dense_eval): column groups of GROUP panels outside, row
 * blocks inside, so each weight comes from memory once per call and from
 * L1/L2 for the following row blocks; rows are split into balanced blocks
 * of at most 6 (n = 15: 5 + 5 + 5), n <= 3 uses one block with wider tiles.
 *
 * Streaming: a tile working on panel p also prefetches, line by line as it
 * goes, panel p + GROUP (the same place in the next group), and past the
 * last group the first panels of the layer evaluated next (`next`), so the
 * weights arrive from L3/memory while the current group is computed.  This
 * is worth 10-25% per evaluation at n = 2..15 (bench_model, loaded machine).
 * Prefetch addresses are computed as integers: they may point past the
 * arrays, which a prefetch tolerates.
 */
#include "model/emu_gemm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define P SF_EMU_PANEL
#define GROUP 4   /* panels per column group: 4 x 16 KB of W for wi = 256 */
#define MR_MAX 6  /* rows per register tile for n >= 4 */

static void *alloc64(size_t bytes)
{
    size_t sz = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, sz ? sz : 64);
}

void sf_emu_dense_free(sf_emu_dense *d)
{
    if (!d) return;
    free(d->w);
    free(d->b);
    memset(d, 0, sizeof *d);
}

sf_status sf_emu_dense_pack(sf_emu_dense *d, int wi, int wo, const float *W, size_t ldw, const float *b)
{
    memset(d, 0, sizeof *d);
    if (wi < 1 || wo < 1 || ldw < (size_t)wo) return SF_ERROR(SF_EINVAL, "dense layer shape %d x %d", wi, wo);
    int np = (wo + P - 1) / P;
    d->w = alloc64((size_t)np * (size_t)wi * P * sizeof(float));
    d->b = alloc64((size_t)np * P * sizeof(float));
    if (!d->w || !d->b) {
        sf_emu_dense_free(d);
        return SF_ERROR(SF_ENOMEM, "out of memory packing a %d x %d layer", wi, wo);
    }
    d->wi = wi;
    d->wo = wo;
    d->npanel = np;
    for (int p = 0; p < np; p++)
        for (int i = 0; i < wi; i++)
            for (int c = 0; c < P; c++) {
                int j = p * P + c;
                d->w[((size_t)p * (size_t)wi + (size_t)i) * P + c] = j < wo ? W[(size_t)i * ldw + (size_t)j] : 0.0f;
            }
    for (int j = 0; j < np * P; j++) d->b[j] = (b && j < wo) ? b[j] : 0.0f;
    return SF_OK;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Store v's first `cols` lanes (1..8) to p. */
static ALWAYS_INLINE void store_part(float *p, __m256 v, int cols)
{
    if (cols >= 8) {
        _mm256_storeu_ps(p, v);
    } else if (cols > 0) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
        _mm256_maskstore_ps(p, mask, v);
    }
}

/* One tile: rows x[0..MR) (stride ldx), panels w[0..NP) (stride pstride
 * floats), writing y columns [0, ncol) of the tile.  MR x 2 NP <= 12.
 * pf (0: none): address of the panels to prefetch, pfstride bytes apart;
 * row i of each is prefetched with row i of the tile. */
static ALWAYS_INLINE void tile(const int MR, const int NP, int wi, const float *restrict x, size_t ldx,
                               const float *restrict w, size_t pstride, const float *restrict b,
                               float *restrict y, size_t ldy, int ncol, uintptr_t pf, size_t pfstride)
{
    __m256 acc[12]; /* acc[r * 2 NP + v] */
    _Pragma("GCC unroll 16") for (int v = 0; v < 2 * NP; v++) {
        __m256 bv = _mm256_load_ps(b + 8 * v);
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) acc[r * 2 * NP + v] = bv;
    }
    if (MR * 2 * NP + 2 * NP + 1 <= 16) {
        /* weights in registers, one broadcast live at a time */
        for (int i = 0; i < wi; i++) {
            if (pf) _Pragma("GCC unroll 4") for (int q = 0; q < NP; q++) _mm_prefetch((const char *)(pf + (size_t)q * pfstride + (size_t)i * P * sizeof(float)), _MM_HINT_T0);
            __m256 wv[8];
            _Pragma("GCC unroll 16") for (int v = 0; v < 2 * NP; v++) wv[v] = _mm256_load_ps(w + (size_t)(v >> 1) * pstride + (size_t)i * P + 8 * (v & 1));
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {
                __m256 xb = _mm256_broadcast_ss(x + (size_t)r * ldx + (size_t)i);
                _Pragma("GCC unroll 16") for (int v = 0; v < 2 * NP; v++) acc[r * 2 * NP + v] = _mm256_fmadd_ps(xb, wv[v], acc[r * 2 * NP + v]);
            }
        }
    } else {
        /* broadcasts in registers, one weight vector live at a time */
        for (int i = 0; i < wi; i++) {
            if (pf) _Pragma("GCC unroll 4") for (int q = 0; q < NP; q++) _mm_prefetch((const char *)(pf + (size_t)q * pfstride + (size_t)i * P * sizeof(float)), _MM_HINT_T0);
            __m256 xb[MR_MAX];
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) xb[r] = _mm256_broadcast_ss(x + (size_t)r * ldx + (size_t)i);
            _Pragma("GCC unroll 16") for (int v = 0; v < 2 * NP; v++) {
                __m256 wv = _mm256_load_ps(w + (size_t)(v >> 1) * pstride + (size_t)i * P + 8 * (v & 1));
                _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) acc[r * 2 * NP + v] = _mm256_fmadd_ps(xb[r], wv, acc[r * 2 * NP + v]);
            }
        }
    }
    if (ncol >= NP * P) {
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 16") for (int v = 0; v < 2 * NP; v++) _mm256_storeu_ps(y + (size_t)r * ldy + 8 * v, acc[r * 2 * NP + v]);
    } else {
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 16") for (int v = 0; v < 2 * NP; v++) store_part(y + (size_t)r * ldy + 8 * v, acc[r * 2 * NP + v], ncol - 8 * v);
    }
}

#define TILE_FN(mr, np)                                                                                   \
    static void tile_##mr##_##np(int wi, const float *x, size_t ldx, const float *w, size_t pstride,      \
                                 const float *b, float *y, size_t ldy, int ncol, uintptr_t pf, size_t pfs) \
    {                                                                                                     \
        tile(mr, np, wi, x, ldx, w, pstride, b, y, ldy, ncol, pf, pfs);                                   \
    }
TILE_FN(1, 1)
TILE_FN(1, 2)
TILE_FN(1, 3)
TILE_FN(1, 4)
TILE_FN(2, 1)
TILE_FN(2, 2)
TILE_FN(2, 3)
TILE_FN(3, 1)
TILE_FN(3, 2)
TILE_FN(4, 1)
TILE_FN(5, 1)
TILE_FN(6, 1)

typedef void (*tile_fn)(int, const float *, size_t, const float *, size_t, const float *, float *, size_t, int, uintptr_t,
                        size_t);

/* tiles[mr - 1][np - 1]; np_max[mr - 1] the widest tile for mr rows */
static const tile_fn tiles[MR_MAX][4] = {
    {tile_1_1, tile_1_2, tile_1_3, tile_1_4}, {tile_2_1, tile_2_2, tile_2_3, NULL}, {tile_3_1, tile_3_2, NULL, NULL},
    {tile_4_1, NULL, NULL, NULL},             {tile_5_1, NULL, NULL, NULL},         {tile_6_1, NULL, NULL, NULL}};
static const int np_max[MR_MAX] = {4, 3, 2, 1, 1, 1};

void sf_emu_dense_eval(const sf_emu_dense *d, size_t n, const float *x, size_t ldx, float *y, size_t ldy,
                       const sf_emu_dense *next)
{
    if (n == 0) return;
    const size_t pstride = (size_t)d->wi * P;
    const size_t nblk = (n + MR_MAX - 1) / MR_MAX;
    for (int g0 = 0; g0 < d->npanel; g0 += GROUP) {
        int g1 = g0 + GROUP < d->npanel ? g0 + GROUP : d->npanel;
        size_t r0 = 0;
        for (size_t blk = 0; blk < nblk; blk++) {
            int mr = (int)((n - r0 + (nblk - blk) - 1) / (nblk - blk)); /* balanced: ceil(rows left / blocks left) */
            for (int p = g0; p < g1;) {
                int np = g1 - p < np_max[mr - 1] ? g1 - p : np_max[mr - 1];
                int ncol = d->wo - p * P, t = p + GROUP; /* t: the panel to prefetch */
                uintptr_t pf = 0;
                size_t pfs = 0;
                if (t < d->npanel) {
                    pf = (uintptr_t)d->w + (size_t)t * pstride * sizeof(float);
                    pfs = pstride * sizeof(float);
                } else if (next && next->w) {
                    pfs = (size_t)next->wi * P * sizeof(float);
                    pf = (uintptr_t)next->w + (size_t)(t - d->npanel) * pfs;
                }
                tiles[mr - 1][np - 1](d->wi, x + r0 * ldx, ldx, d->w + (size_t)p * pstride, pstride, d->b + (size_t)p * P,
                                      y + r0 * ldy + (size_t)p * P, ldy, ncol, pf, pfs);
                p += np;
            }
            r0 += (size_t)mr;
        }
    }
}

#else /* portable fallback: the same panels and summation order, no fused rounding */

void sf_emu_dense_eval(const sf_emu_dense *d, size_t n, const float *x, size_t ldx, float *y, size_t ldy,
                       const sf_emu_dense *next)
{
    (void)next;
    const size_t pstride = (size_t)d->wi * P;
    for (int p = 0; p < d->npanel; p++) {
        const float *w = d->w + (size_t)p * pstride;
        int ncol = d->wo - p * P < P ? d->wo - p * P : P;
        for (size_t r = 0; r < n; r++) {
            float acc[P];
            for (int c = 0; c < P; c++) acc[c] = d->b[p * P + c];
            const float *xr = x + r * ldx;
            for (int i = 0; i < d->wi; i++) {
                float xi = xr[i];
                for (int c = 0; c < P; c++) acc[c] += xi * w[(size_t)i * P + c];
            }
            memcpy(y + r * ldy + (size_t)p * P, acc, (size_t)ncol * sizeof(float));
        }
    }
}

#endif
