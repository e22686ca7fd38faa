/*
 * model/emu_gemm.h — the emulator's dense layers for small batches:
 *     y (n, wo) = b (wo) + x (n, wi) W (wi, wo)        (float32, row-major)
 * for n up to a few dozen rows, where OpenBLAS sgemm spends most of its time
 * packing (4-7 ms per batched call of the model) and sgemv (n = 1) is bound
 * by its strided reads of W.
 *
 * Plan/execute: sf_emu_dense_pack copies W once (at model load) into column
 * panels of SF_EMU_PANEL = 16 outputs, each panel (wi, 16) contiguous and
 * 64-byte aligned, zero-padded past wo, with the bias padded likewise.
 * sf_emu_dense_eval then streams every weight from memory once per call:
 * register tiles of MR rows x NP panels (MR x 2 NP ymm accumulators: 4-6 rows
 * x 1 panel for n >= 4; 1 x 4, 2 x 3, 3 x 2 panels for n = 1, 2, 3) run
 * over all wi inputs with FMAs of a broadcast x[r, i] and the vectors
 * W[i, panel]; every row block re-reads a group of panels from L1/L2, and
 * the next group (or layer) is prefetched meanwhile.
 *
 * Every output y[r, j] is b[j] + x[r,0] W[0,j] + ... + x[r,wi-1] W[wi-1,j]
 * accumulated in that order (one fused multiply-add per term), whatever n,
 * the row's position in the batch or the tile that computes it: a row's
 * result is bit-identical at any batch size.  It differs from sgemm's
 * summation order by float rounding only (~1e-7 relative per layer).
 * Without AVX2+FMA at compile time a portable scalar loop computes the same
 * sums (without fused rounding).
 */
#ifndef SEDFLOW_MODEL_EMU_GEMM_H
#define SEDFLOW_MODEL_EMU_GEMM_H

#include <stddef.h>

#include "sedflow/error.h"

#define SF_EMU_PANEL 16 /* outputs per packed column panel */

typedef struct {
    int wi, wo;   /* W is (wi, wo) */
    int npanel;   /* ceil(wo / SF_EMU_PANEL) */
    float *w;     /* (npanel, wi, SF_EMU_PANEL) panels, zero past wo; 64-byte aligned */
    float *b;     /* (npanel * SF_EMU_PANEL) bias, zero past wo; 64-byte aligned */
} sf_emu_dense;

/* Pack W (wi, wo) with row stride ldw (>= wo) and bias b (wo; NULL = zero)
 * into d.  On error d is left empty (safe to free). */
sf_status sf_emu_dense_pack(sf_emu_dense *d, int wi, int wo, const float *W, size_t ldw, const float *b);
void sf_emu_dense_free(sf_emu_dense *d);

/* y (n, ldy) columns [0, wo) = b + x (n, ldx) columns [0, wi) W.  Writes
 * nothing else (no padding columns); x and y must not overlap.  next (may
 * be NULL): the layer evaluated after this one, whose first weights are
 * prefetched while this one finishes.  Allocates nothing, reads d and next
 * only: threads may share them. */
void sf_emu_dense_eval(const sf_emu_dense *d, size_t n, const float *x, size_t ldx, float *y, size_t ldy,
                       const sf_emu_dense *next);

#endif
