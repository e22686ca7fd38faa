#include "core/blas.h"

#include <stdatomic.h>

extern void openblas_set_num_threads(int); /* OpenBLAS extension */

void sf_blas_serial(void)
{
    static atomic_int done = 0;
    if (!atomic_exchange(&done, 1)) openblas_set_num_threads(1);
}
