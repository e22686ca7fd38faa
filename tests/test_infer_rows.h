/*
 * Simulated "good" galaxies for the sedflow infer tests (test_infer.c,
 * test_infer_fallback.c): rows of the simulator (seed 77, SEDflow prior,
 * models/noise_nsa.h5) that pass the sigma check (sigma' <= mu_sigma(m) +
 * nsd sd_sigma(m) in every band) and, when the support has colour limits,
 * the colour check with a margin (colour >= 0.1th percentile + margin), by a
 * computation independent of the infer code.  ivar is set so that
 * (2.5/ln 10) / (f sqrt(ivar)) = sigma' [mag].
 */
#ifndef SEDFLOW_TEST_INFER_ROWS_H
#define SEDFLOW_TEST_INFER_ROWS_H

#include <math.h>

#include "sedflow/infer.h"
#include "sedflow/model.h"
#include "sedflow/noise.h"
#include "sedflow/sim.h"

typedef struct {
    double z, flux[5], ivar[5]; /* redshift, flux [nmgy], ivar [nmgy^-2] */
} sim_good_row;

/* n rows with zmin < z < zmax into out; returns 0, or -1 when 20 blocks of
 * 256 candidates did not give n. */
static int sim_good_rows(const sf_model *m, const sf_noise *nm, const sf_infer_support *sup, double zmin, double zmax,
                         double nsd, double colour_margin, int n, sim_good_row *out)
{
    sf_sim_options o;
    sf_sim_options_default(&o);
    o.seed = 77;
    o.block = 256;
    o.nthreads = 2;
    sf_sim *s = NULL;
    sf_sim_counts c = {0};
    if (sf_sim_alloc(m, nm, &o, &s)) return -1;
    int ng = 0;
    const double k = 2.5 / log(10.0);
    for (uint64_t blk = 0; blk < 20 && ng < n; blk++) {
        const sf_sim_rows *sr;
        if (sf_sim_block(s, blk, &sr, &c)) break;
        for (size_t i = 0; i < sr->n && ng < n; i++) {
            int ok = sr->z[i] > zmin && sr->z[i] < zmax;
            for (int b = 0; b < 5; b++) {
                double mu, sd;
                sf_noise_eval(nm, b, sr->mag[i * 5 + b], &mu, &sd);
                if (sr->sigma_mag[i * 5 + b] > mu + nsd * sd) ok = 0;
                if (b < 4 && sup->has_colour &&
                    sr->mag[i * 5 + b] - sr->mag[i * 5 + b + 1] < sup->colour_min[b] + colour_margin)
                    ok = 0;
            }
            if (!ok) continue;
            sim_good_row *r = &out[ng++];
            r->z = sr->z[i];
            for (int b = 0; b < 5; b++) {
                double f = sr->flux[i * 5 + b], sg = sr->sigma_mag[i * 5 + b];
                r->flux[b] = f;
                r->ivar[b] = 1.0 / pow(f * sg / k, 2);
            }
        }
    }
    sf_sim_free(s);
    return ng < n ? -1 : 0;
}

#endif
