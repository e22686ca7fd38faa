/*
 * core/blas.h — BLAS threading policy.
 *
 * sedflow parallelises over galaxies/rows with OpenMP and calls BLAS from
 * inside those threads, so OpenBLAS's own thread pool must stay at one
 * thread: otherwise the threads oversubscribe the cores, and OpenBLAS's
 * threaded sgemm can round differently from its serial one, which would
 * make results depend on the thread count.  Every entry point that loads a
 * model (emulator or flow) calls sf_blas_serial() once.
 */
#ifndef SEDFLOW_CORE_BLAS_H
#define SEDFLOW_CORE_BLAS_H

/* Set OpenBLAS to one thread (idempotent, cheap after the first call). */
void sf_blas_serial(void);

#endif
