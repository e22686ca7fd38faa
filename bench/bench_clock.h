/* Clocks for the benchmark programs, in seconds: wall (monotonic), CPU time
 * of the calling thread, and CPU time of the whole process (all threads). */
#ifndef SEDFLOW_BENCH_CLOCK_H
#define SEDFLOW_BENCH_CLOCK_H

#include <time.h>

static inline double bench_clock(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static inline double bench_wall_s(void) { return bench_clock(CLOCK_MONOTONIC); }
static inline double bench_thread_cpu_s(void) { return bench_clock(CLOCK_THREAD_CPUTIME_ID); }
static inline double bench_process_cpu_s(void) { return bench_clock(CLOCK_PROCESS_CPUTIME_ID); }

#endif
