/*
 * core/threads.h — the thread count of the library's parallel regions.
 *
 * Every public function that takes `nthreads` resolves it here: <= 0 means
 * all cores (omp_get_max_threads()), and more than SF_MAX_THREADS is cut to
 * SF_MAX_THREADS (libgomp crashed when asked for 100,000).  Results never
 * depend on the thread count (docs/CONVENTIONS.md), so the cut changes only
 * speed.  The CLI refuses a --threads beyond the same limit.
 */
#ifndef SEDFLOW_CORE_THREADS_H
#define SEDFLOW_CORE_THREADS_H

#include <omp.h>

#define SF_MAX_THREADS 1024

/* Threads for a request, in [1, SF_MAX_THREADS]. */
static inline int sf_nthreads(int requested)
{
    int n = requested > 0 ? requested : omp_get_max_threads();
    return n < 1 ? 1 : n > SF_MAX_THREADS ? SF_MAX_THREADS : n;
}

#endif
