/* Row-major sgemm/sgemv for the flow code, calling OpenBLAS's Fortran
 * entry points (sgemm_, sgemv_) directly.  Reason: the library links GSL's
 * reference CBLAS (libgslcblas) too, and its cblas_sgemm symbol can win over
 * OpenBLAS's at link time, which made the flow ~25x slower; the Fortran
 * names exist only in OpenBLAS.  Row-major C = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T. */
#include "flow/flow_impl.h"

typedef int blasint_t; /* OpenBLAS built with 32-bit integers (Debian) */
extern void sgemm_(const char *, const char *, const blasint_t *, const blasint_t *, const blasint_t *, const float *,
                   const float *, const blasint_t *, const float *, const blasint_t *, const float *, float *,
                   const blasint_t *);
extern void sgemv_(const char *, const blasint_t *, const blasint_t *, const float *, const float *, const blasint_t *,
                   const float *, const blasint_t *, const float *, float *, const blasint_t *);
extern void openblas_set_num_threads(int);

void sf_flow_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    const char ta = transB ? 'T' : 'N', tb = transA ? 'T' : 'N';
    sgemm_(&ta, &tb, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
}

void sf_flow_sgemv(int M, int N, float alpha, const float *A, int lda, const float *x, int incx, float beta, float *y,
                   int incy)
{
    if (M <= 0 || N <= 0) return;
    const char t = 'T';
    sgemv_(&t, &N, &M, &alpha, A, &lda, x, &incx, &beta, y, &incy);
}

void sf_flow_blas_single(void)
{
    static int done = 0;
    if (!done) {
        openblas_set_num_threads(1);
        done = 1;
    }
}
