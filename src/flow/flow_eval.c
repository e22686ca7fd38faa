/*
 * log q driver shared by the flow families (sf_flow_logq, sf_flow_logq_base)
 * and the batch loss of the trainers.  Rows go in fixed chunks of
 * SF_FLOW_CHUNK rows, one chunk per thread at a time (single-threaded
 * inside the family's forward pass: the MAF's unit-major kernels of
 * maf_sample.c, the NSF's sgemm), so results do not depend on the thread
 * count.  Per row: the input (box map, z-scoring; sf_flow_input_row),
 * the family's forward pass to the base variable z (sf_flow_evaluator), then
 * sf_flow_row_logq with the flow's and the box map's log-dets.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "flow/flow_impl.h"

#define CHUNK SF_FLOW_CHUNK

sf_status sf_flow_logq(const sf_flow *f, size_t n, const double *theta, const double *x, double *logq, int nthreads)
{
    return sf_flow_logq_base(f, n, theta, x, logq, NULL, nthreads);
}

sf_status sf_flow_logq_base(const sf_flow *f, size_t n, const double *theta, const double *x, double *logq,
                            float *z, int nthreads)
{
    if (!f->prepared) return SF_ERROR(SF_EINVAL, "flow not prepared (call sf_flow_prepare after changing weights)");
    if (n == 0) return SF_OK;
    if (!theta || !logq || (f->C > 0 && !x)) return SF_ERROR(SF_EINVAL, "NULL theta, x or logq");
    const sf_flow_evaluator *ev = f->nsf ? &sf_nsf_evaluator : &sf_maf_evaluator;
    sf_flow_blas_single();
    const int D = f->D, C = f->C;
    const int nt = sf_nthreads(nthreads);
    const size_t nchunks = (n + CHUNK - 1) / CHUNK;
    int fail = 0;
#pragma omp parallel num_threads(nt) reduction(| : fail)
    {
        void *ws = ev->ws_alloc(f);
        float *u = malloc(CHUNK * (size_t)D * sizeof(float)), *xz = malloc((CHUNK * (size_t)C + 1) * sizeof(float));
        double *ldet = malloc(CHUNK * sizeof(double));
        if (!ws || !u || !xz || !ldet) fail = 1;
#pragma omp for schedule(dynamic, 1)
        for (size_t ch = 0; ch < nchunks; ch++) {
            if (fail) continue;
            const size_t r0 = ch * CHUNK;
            const int m = (int)(n - r0 < CHUNK ? n - r0 : CHUNK);
            for (int r = 0; r < m; r++) /* logq holds the box map's log |dv/dtheta| meanwhile */
                logq[r0 + r] = sf_flow_input_row(f, theta + (r0 + r) * D, C ? x + (r0 + r) * C : NULL,
                                                 u + (size_t)r * D, xz + (size_t)r * C);
            ev->forward(f, ws, m, u, xz, ldet);
            for (int r = 0; r < m; r++)
                logq[r0 + r] = sf_flow_row_logq(f, u + (size_t)r * D, ldet[r] + logq[r0 + r]);
            if (z) memcpy(z + r0 * D, u, (size_t)m * D * sizeof(float));
        }
        ev->ws_free(ws);
        free(u);
        free(xz);
        free(ldet);
    }
    if (fail) return SF_ERROR(SF_ENOMEM, "out of memory for log q workspaces");
    return SF_OK;
}

sf_status sf_flow_batch_loss(const sf_flow *f, int B, const double *theta, const float *z, const double *ldet,
                             double *loss, double *logq_rows)
{
    const int D = f->D;
    double sum = 0;
    for (int r = 0; r < B; r++) {
        const double q = sf_flow_row_logq(f, z + (size_t)r * D, ldet[r] + sf_flow_box_ljac(f, theta + (size_t)r * D));
        if (logq_rows) logq_rows[r] = q;
        sum += q;
    }
    if (loss) *loss = -sum / B;
    if (!isfinite(sum)) return SF_ERROR(SF_ENOCONV, "log q not finite in a training batch");
    return SF_OK;
}
