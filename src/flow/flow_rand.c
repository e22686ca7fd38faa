/* Random variates for the flow code, kept apart from <cblas.h> (GSL's
 * randist header pulls in gsl_cblas.h, whose declarations clash with
 * OpenBLAS's). */
#include <gsl/gsl_randist.h>

#include "flow/flow_impl.h"

void sf_flow_gauss_fill(gsl_rng *r, float *z, size_t n)
{
    for (size_t i = 0; i < n; i++) z[i] = (float)gsl_ran_gaussian_ziggurat(r, 1.0);
}

void sf_flow_shuffle(gsl_rng *r, size_t *a, size_t n)
{
    gsl_ran_shuffle(r, a, n, sizeof *a);
}

void sf_flow_shuffle_int(gsl_rng *r, int *a, size_t n)
{
    gsl_ran_shuffle(r, a, n, sizeof *a);
}
