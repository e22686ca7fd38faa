/* Core utilities: error messages (a message may wrap the previous one) and
 * reproducible random streams. */
#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "sedflow/error.h"
#include "sedflow/rng.h"
#include "testutil.h"

int main(void)
{
    sf_status st = SF_ERROR(SF_EDOMAIN, "redshift %g outside (0, 0.6]", 0.7);
    CHECK(st == SF_EDOMAIN, "SF_ERROR returns its code");
    CHECK(strstr(sf_last_error(), "main(") && strstr(sf_last_error(), "0.7"), "message has origin and text: %s", sf_last_error());
    /* a cause wrapped in context: the message may be an argument of the next */
    SF_ERROR(SF_EFORMAT, "attribute '%s' missing", "n_rows");
    SF_ERROR(SF_EFORMAT, "malformed group: %s", sf_last_error());
    CHECK(strstr(sf_last_error(), "malformed group: main(") && strstr(sf_last_error(), "attribute 'n_rows' missing"),
          "sf_last_error() as an argument keeps the cause: %s", sf_last_error());

    /* Streams: same (seed, stream) -> same numbers; different -> different. */
    gsl_rng *a = sf_rng_alloc(1), *b = sf_rng_alloc(1);
    sf_rng_set_stream(a, 42, 7);
    sf_rng_set_stream(b, 42, 7);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= gsl_rng_get(a) == gsl_rng_get(b);
    CHECK(same, "same seed and stream give the same sequence");
    sf_rng_set_stream(b, 42, 8);
    sf_rng_set_stream(a, 42, 7);
    CHECK(gsl_rng_get(a) != gsl_rng_get(b), "neighbouring streams differ");

    /* Uniform mean and Gaussian variance through GSL variates. */
    const int n = 200000;
    double su = 0, sg = 0, sg2 = 0;
    for (int i = 0; i < n; i++) {
        su += gsl_rng_uniform(a);
        double g = gsl_ran_gaussian_ziggurat(a, 1.0);
        sg += g;
        sg2 += g * g;
    }
    CHECK_ABS(su / n, 0.5, 5 * sqrt(1.0 / 12 / n), "uniform mean");
    CHECK_ABS(sg2 / n - (sg / n) * (sg / n), 1.0, 5 * sqrt(2.0 / n), "gaussian variance");
    gsl_rng_free(a);
    gsl_rng_free(b);
    return tu_finish("test_core");
}
