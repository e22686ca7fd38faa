/*
 * The simulator (SEDflow section 3.2; see sedflow/sim.h): prior draws,
 * noiseless photometry in 256-row chunks on OpenMP threads, the noise model
 * (eq. 4-5) and the cuts, block by block.
 */
#include "sedflow/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <omp.h>

#include "core/threads.h"

#include "sedflow/rng.h"

#define CHUNK 256
#define LN10_2P5 0.92103403719761836 /* ln(10)/2.5 */

struct sf_sim {
    const sf_model *model;
    const sf_noise *noise;
    sf_sim_options opt;
    int nthreads;
    sf_model_work **work; /* (nthreads) */
    gsl_rng **rng;        /* (nthreads) */
    /* candidate buffers (block) */
    double *c_u, *c_theta, *c_z, *c_flux;
    unsigned char *c_reason; /* 0 kept, 1 flux range, 2 sigma, 3 noisy flux */
    uint64_t *c_rng;         /* (block, 4) each candidate's stream state after its prior draws */
    double *c_sigma_mag, *c_noisy;
    sf_sim_rows rows;
};

void sf_sim_options_default(sf_sim_options *opt)
{
    opt->prior = SF_PRIOR_SEDFLOW;
    opt->seed = 1;
    opt->z_min = 0.0;
    opt->z_max = 0.2;
    opt->block = 4096;
    opt->nthreads = 0;
}

void sf_sim_free(sf_sim *s)
{
    if (!s) return;
    for (int t = 0; t < s->nthreads; t++) {
        if (s->work) sf_model_work_free(s->work[t]);
        if (s->rng && s->rng[t]) gsl_rng_free(s->rng[t]);
    }
    free(s->work);
    free(s->rng);
    free(s->c_u); free(s->c_theta); free(s->c_z); free(s->c_flux);
    free(s->c_reason); free(s->c_rng); free(s->c_sigma_mag); free(s->c_noisy);
    sf_sim_rows *r = &s->rows;
    free(r->candidate); free(r->theta); free(r->theta_u); free(r->z); free(r->flux_true); free(r->flux);
    free(r->sigma_flux); free(r->mag); free(r->sigma_mag); free(r->x); free(r->derived);
    free(s);
}

sf_status sf_sim_alloc(const sf_model *m, const sf_noise *nm, const sf_sim_options *opt, sf_sim **out)
{
    *out = NULL;
    if (!(opt->z_min >= 0 && opt->z_max > opt->z_min && opt->z_max <= SF_ZMAX_MODEL))
        return SF_ERROR(SF_EINVAL, "redshift range [%g, %g] must satisfy 0 <= z_min < z_max <= %g", opt->z_min,
                        opt->z_max, SF_ZMAX_MODEL);
    if (opt->block < 1 || opt->block > (1u << 24)) return SF_ERROR(SF_EINVAL, "block size %zu out of range", opt->block);
    sf_sim *s = calloc(1, sizeof *s);
    if (!s) return SF_ERROR(SF_ENOMEM, "out of memory");
    s->model = m;
    s->noise = nm;
    s->opt = *opt;
    s->nthreads = sf_nthreads(opt->nthreads);
    size_t B = opt->block;
    s->work = calloc((size_t)s->nthreads, sizeof *s->work);
    s->rng = calloc((size_t)s->nthreads, sizeof *s->rng);
    int bad = !s->work || !s->rng;
    for (int t = 0; !bad && t < s->nthreads; t++) {
        bad |= sf_model_work_alloc(m, CHUNK, &s->work[t]) != SF_OK;
        bad |= !(s->rng[t] = sf_rng_alloc(opt->seed));
    }
    s->c_u = malloc(B * SF_NU * sizeof(double));
    s->c_theta = malloc(B * SF_NTHETA * sizeof(double));
    s->c_z = malloc(B * sizeof(double));
    s->c_flux = malloc(B * SF_NBANDS * sizeof(double));
    s->c_reason = malloc(B);
    s->c_rng = malloc(B * 4 * sizeof(uint64_t));
    s->c_sigma_mag = malloc(B * SF_NBANDS * sizeof(double));
    s->c_noisy = malloc(B * SF_NBANDS * sizeof(double));
    sf_sim_rows *r = &s->rows;
    r->candidate = malloc(B * sizeof(long long));
    r->theta = malloc(B * SF_NTHETA * sizeof(double));
    r->theta_u = malloc(B * SF_NU * sizeof(double));
    r->z = malloc(B * sizeof(double));
    r->flux_true = malloc(B * SF_NBANDS * sizeof(double));
    r->flux = malloc(B * SF_NBANDS * sizeof(double));
    r->sigma_flux = malloc(B * SF_NBANDS * sizeof(double));
    r->mag = malloc(B * SF_NBANDS * sizeof(double));
    r->sigma_mag = malloc(B * SF_NBANDS * sizeof(double));
    r->x = malloc(B * SF_NX * sizeof(double));
    r->derived = malloc(B * SF_NDERIVED * sizeof(double));
    bad |= !s->c_u || !s->c_theta || !s->c_z || !s->c_flux || !s->c_reason || !s->c_rng || !s->c_sigma_mag || !s->c_noisy ||
           !r->candidate || !r->theta || !r->theta_u || !r->z || !r->flux_true || !r->flux || !r->sigma_flux ||
           !r->mag || !r->sigma_mag || !r->x || !r->derived;
    if (bad) {
        sf_sim_free(s);
        return SF_ERROR(SF_ENOMEM, "out of memory for the simulator (block %zu, %d threads)", B, s->nthreads);
    }
    *out = s;
    return SF_OK;
}

/* Candidate j: prior draw and redshift, from stream j. */
static void draw_parameters(const sf_sim *s, gsl_rng *r, uint64_t j, double *u, double *theta, double *z)
{
    sf_rng_set_stream(r, s->opt.seed, j);
    sf_prior_sample(s->opt.prior, r, u);
    sf_u_to_theta(u, theta);
    *z = s->opt.z_min + (s->opt.z_max - s->opt.z_min) * gsl_rng_uniform_pos(r);
}

/* Noise for candidate (after its prior draws, same stream): reason code. */
static unsigned char add_noise(const sf_sim *s, gsl_rng *r, const double *flux, double *sigma_mag, double *noisy)
{
    if (!sf_noise_flux_in_range(s->noise, flux)) return 1;
    for (int b = 0; b < SF_NBANDS; b++) {
        double m = 22.5 - 2.5 * log10(flux[b]);
        if (sf_noise_draw(s->noise, b, m, r, 1, &sigma_mag[b]) != SF_OK) return 2;
    }
    for (int b = 0; b < SF_NBANDS; b++) {
        double sf = flux[b] * LN10_2P5 * sigma_mag[b];
        noisy[b] = flux[b] + gsl_ran_gaussian_ziggurat(r, sf);
        if (!(noisy[b] > 0)) return 3;
    }
    return 0;
}

sf_status sf_sim_block(sf_sim *s, uint64_t k, const sf_sim_rows **rows, sf_sim_counts *counts)
{
    const size_t B = s->opt.block;
    const size_t nchunks = (B + CHUNK - 1) / CHUNK;
    const uint64_t j0 = k * (uint64_t)B;
    int failed = 0;
#pragma omp parallel num_threads(s->nthreads) reduction(| : failed)
    {
        int t = omp_get_thread_num();
        gsl_rng *r = s->rng[t];
#pragma omp for schedule(dynamic, 1)
        for (size_t c = 0; c < nchunks; c++) {
            size_t i0 = c * CHUNK, n = B - i0 < CHUNK ? B - i0 : CHUNK;
            for (size_t i = i0; i < i0 + n; i++) {
                draw_parameters(s, r, j0 + i, s->c_u + i * SF_NU, s->c_theta + i * SF_NTHETA, &s->c_z[i]);
                sf_rng_save(r, s->c_rng + 4 * i);
            }
            if (sf_model_photometry(s->model, s->work[t], n, s->c_theta + i0 * SF_NTHETA, s->c_z + i0,
                                    s->c_flux + i0 * SF_NBANDS, NULL))
                failed = 1;
            for (size_t i = i0; i < i0 + n && !failed; i++) {
                sf_rng_restore(r, s->c_rng + 4 * i); /* continue stream j0 + i */
                s->c_reason[i] = add_noise(s, r, s->c_flux + i * SF_NBANDS, s->c_sigma_mag + i * SF_NBANDS,
                                           s->c_noisy + i * SF_NBANDS);
            }
        }
    }
    if (failed) return SF_ERROR(SF_EINTERNAL, "forward model failed on a prior draw: %s", sf_last_error());
    /* gather kept rows in candidate order */
    sf_sim_rows *o = &s->rows;
    size_t n = 0;
    for (size_t i = 0; i < B; i++) {
        counts->drawn++;
        switch (s->c_reason[i]) {
        case 1: counts->cut_flux_range++; continue;
        case 2: counts->cut_sigma++; continue;
        case 3: counts->cut_noisy_flux++; continue;
        default: break;
        }
        counts->kept++;
        o->candidate[n] = (long long)(j0 + i);
        memcpy(o->theta + n * SF_NTHETA, s->c_theta + i * SF_NTHETA, SF_NTHETA * sizeof(double));
        memcpy(o->theta_u + n * SF_NU, s->c_u + i * SF_NU, SF_NU * sizeof(double));
        o->z[n] = s->c_z[i];
        for (int b = 0; b < SF_NBANDS; b++) {
            double f = s->c_noisy[i * SF_NBANDS + b], sm = s->c_sigma_mag[i * SF_NBANDS + b];
            double ft = s->c_flux[i * SF_NBANDS + b];
            o->flux_true[n * SF_NBANDS + b] = ft;
            o->flux[n * SF_NBANDS + b] = f;
            o->sigma_flux[n * SF_NBANDS + b] = ft * LN10_2P5 * sm;
            o->mag[n * SF_NBANDS + b] = 22.5 - 2.5 * log10(f);
            o->sigma_mag[n * SF_NBANDS + b] = sm;
            o->x[n * SF_NX + b] = o->mag[n * SF_NBANDS + b];
            o->x[n * SF_NX + SF_NBANDS + b] = sm;
        }
        o->x[n * SF_NX + 10] = s->c_z[i];
        n++;
    }
    o->n = n;
    sf_status st = sf_model_derived(s->model, n, o->theta, o->z, o->derived);
    if (st) return st;
    *rows = o;
    return SF_OK;
}
