/*
 * The packed-panel micro-kernel of MAF training (flow/maf_gemm.c):
 *  1. sf_gemm_pack copies exactly: both orientations, widths 6 and 16,
 *     r = 1..w live lanes (the rest 0), K = 0..21 (whole 8 x 8 transposes
 *     plus tails), strides wider than the rows;
 *  2. sf_gemm_tile against a double-precision reference, A as rows, as
 *     columns and as a packed panel, mr = 1..6, nr = 1..16, K = 0..300,
 *     with and without bias and per-row column limits: relative error
 *     <= 1e-5 of sum |a b|, nothing written outside the live block;
 *  3. an element's bytes do not depend on the tile it falls in (the
 *     thread-count independence of training rests on this): the same C
 *     row computed at every row position of a tile, and with every mr.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_impl.h"
#include "sedflow/rng.h"
#include "testutil.h"

#define SENTINEL 12345.f

static float *rnd(gsl_rng *r, size_t n)
{
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = (float)(2 * gsl_rng_uniform(r) - 1);
    return v;
}

static void check_pack(gsl_rng *r)
{
    int bad = 0, cases = 0;
    const int lds = 29;
    float *S = rnd(r, (size_t)30 * lds), *P = malloc(sizeof(float) * 16 * 30);
    for (int trans = 0; trans < 2; trans++)
        for (int wi = 0; wi < 2; wi++) {
            const int w = wi ? SF_GEMM_NR : SF_GEMM_MR;
            for (int rr = 1; rr <= w; rr++)
                for (int K = 0; K <= 21; K++) {
                    for (int i = 0; i < 16 * 30; i++) P[i] = SENTINEL;
                    sf_gemm_pack(w, rr, K, S, lds, trans, P);
                    for (int k = 0; k < K; k++)
                        for (int i = 0; i < w; i++) {
                            float want = i < rr ? (trans ? S[k * lds + i] : S[i * lds + k]) : 0.f;
                            bad += P[k * w + i] != want;
                        }
                    bad += P[K * w] != SENTINEL; /* nothing past the panel */
                    cases++;
                }
        }
    CHECK(bad == 0, "sf_gemm_pack: %d cases exact, zero-padded, nothing written past K w (%d wrong)", cases, bad);
    free(S);
    free(P);
}

/* ref[i][j] = bias + sum_k A(i,k) B(k,j) in double; scale = |bias| + sum |.| */
static void reference(int K, const float *A, long ai, long ak, const float *B, int ldb, int mr, int nr,
                      const float *bias, double *ref, double *scale)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            double s = bias ? bias[j] : 0, a = bias ? fabs(bias[j]) : 0;
            for (int k = 0; k < K; k++) {
                double t = (double)A[i * ai + k * ak] * B[(size_t)k * ldb + j];
                s += t, a += fabs(t);
            }
            ref[i * SF_GEMM_NR + j] = s, scale[i * SF_GEMM_NR + j] = a;
        }
}

static void check_tile(gsl_rng *r)
{
    enum { KMAX = 300, LDA = 311, LDC = 23 };
    float *Arow = rnd(r, (size_t)SF_GEMM_MR * LDA), *Acol = rnd(r, (size_t)KMAX * LDA);
    float *Ap = malloc(sizeof(float) * SF_GEMM_MR * KMAX), *B = rnd(r, (size_t)KMAX * SF_GEMM_NR + 8);
    float *bias = rnd(r, SF_GEMM_NR), *Cb = malloc(sizeof(float) * (SF_GEMM_MR + 1) * LDC);
    double ref[SF_GEMM_MR * SF_GEMM_NR], scale[SF_GEMM_MR * SF_GEMM_NR], worst = 0;
    int outside = 0, cases = 0;
    const int Ks[] = {0, 1, 7, 8, 33, 128, 300};
    for (int mode = 0; mode < 3; mode++)
        for (int ki = 0; ki < 7; ki++)
            for (int mr = 1; mr <= SF_GEMM_MR; mr++)
                for (int nr = 1; nr <= SF_GEMM_NR; nr += (nr < 4 ? 1 : 5))
                    for (int opt = 0; opt < 3; opt++) {
                        const int K = Ks[ki];
                        const float *A = mode == 0 ? Arow : mode == 1 ? Acol : Ap;
                        long ai = mode == 0 ? LDA : 1, ak = mode == 0 ? 1 : mode == 1 ? LDA : SF_GEMM_MR;
                        if (mode == 2) sf_gemm_pack(SF_GEMM_MR, mr, K, Arow, LDA, 0, Ap);
                        if (mode == 2) A = Ap;
                        const float *bs = opt == 1 ? bias : NULL;
                        int ncol[SF_GEMM_MR];
                        for (int i = 0; i < mr; i++) ncol[i] = (i * 5) % (nr + 3) - 1; /* some <= 0, some > nr */
                        for (int i = 0; i < (SF_GEMM_MR + 1) * LDC; i++) Cb[i] = SENTINEL;
                        sf_gemm_tile(K, A, ai, ak, B, SF_GEMM_NR, Cb + 1, LDC, mr, nr, bs, opt == 2 ? ncol : NULL);
                        reference(K, mode == 2 ? Arow : A, mode == 2 ? LDA : ai, mode == 2 ? 1 : ak, B, SF_GEMM_NR,
                                  mr, nr, bs, ref, scale);
                        for (int i = 0; i <= SF_GEMM_MR; i++)
                            for (int c = 0; c < LDC; c++) {
                                const int j = c - 1;
                                int live = i < mr && j >= 0 && j < nr && (opt != 2 || j < ncol[i]);
                                float v = Cb[i * LDC + c];
                                if (!live) {
                                    outside += v != SENTINEL;
                                    continue;
                                }
                                double e = fabs(v - ref[i * SF_GEMM_NR + j]) / (scale[i * SF_GEMM_NR + j] + 1e-30);
                                if (scale[i * SF_GEMM_NR + j] == 0) e = v != 0;
                                worst = fmax(worst, e);
                            }
                        cases++;
                    }
    CHECK(worst <= 1e-5, "sf_gemm_tile vs double reference, %d cases (rows, columns, packed; bias; limits): "
                         "worst relative error %.2g", cases, worst);
    CHECK(outside == 0, "sf_gemm_tile writes only the live block (%d stray writes)", outside);

    /* 3. the same output row at every position of a tile and with every mr */
    float one[SF_GEMM_NR], C[SF_GEMM_MR * SF_GEMM_NR];
    int differ = 0;
    const int K = 257;
    sf_gemm_tile(K, Arow, LDA, 1, B, SF_GEMM_NR, one, SF_GEMM_NR, 1, SF_GEMM_NR, bias, NULL);
    for (int pos = 0; pos < SF_GEMM_MR; pos++)
        for (int mr = pos + 1; mr <= SF_GEMM_MR; mr++) {
            /* row 0 of Arow placed at tile row pos: rows start pos rows before it */
            float *rows = malloc(sizeof(float) * SF_GEMM_MR * LDA);
            for (int i = 0; i < SF_GEMM_MR; i++) memcpy(rows + i * LDA, Acol + i * LDA, sizeof(float) * LDA);
            memcpy(rows + pos * LDA, Arow, sizeof(float) * LDA);
            sf_gemm_tile(K, rows, LDA, 1, B, SF_GEMM_NR, C, SF_GEMM_NR, mr, SF_GEMM_NR, bias, NULL);
            differ += memcmp(C + pos * SF_GEMM_NR, one, sizeof one) != 0;
            free(rows);
        }
    CHECK(differ == 0, "an element's bytes do not depend on its row in the tile or on mr (%d differ)", differ);
    free(Arow); free(Acol); free(Ap); free(B); free(bias); free(Cb);
}

int main(void)
{
    gsl_rng *r = sf_rng_alloc(42);
    check_pack(r);
    check_tile(r);
    gsl_rng_free(r);
    return tu_finish("test_flow_gemm");
}
