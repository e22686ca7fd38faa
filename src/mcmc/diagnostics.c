/*
 * MCMC diagnostics: integrated autocorrelation time (Goodman & Weare 2010;
 * estimator and automatic window of emcee 3 / Sokal 1997), split-R-hat
 * (Gelman et al. 2013), chain moments.  See include/sedflow/mcmc.h.
 */
#include "sedflow/mcmc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_fft_halfcomplex.h>
#include <gsl/gsl_fft_real.h>

static size_t next_pow2(size_t n)
{
    size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

sf_status sf_mcmc_autocorr_time(const double *x, size_t nsteps, size_t nwalkers, size_t ndim, double c,
                                double *tau, int *reliable)
{
    if (reliable) *reliable = 0;
    if (!x || !tau) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (nsteps < 2 || nwalkers < 1 || ndim < 1)
        return SF_ERROR(SF_EINVAL, "chain of %zu steps x %zu walkers x %zu dims: need >= 2 steps", nsteps, nwalkers,
                        ndim);
    if (!(c > 0)) c = 5.0;
    const size_t nfft = 2 * next_pow2(nsteps);
    double *buf = malloc(nfft * sizeof *buf), *f = malloc(nsteps * sizeof *f);
    if (!buf || !f) {
        free(buf);
        free(f);
        return SF_ERROR(SF_ENOMEM, "autocorrelation buffers (%zu)", nfft);
    }
    int ok = 1;
    double taumax = 0;
    for (size_t d = 0; d < ndim; d++) {
        memset(f, 0, nsteps * sizeof *f);
        size_t nused = 0;
        for (size_t k = 0; k < nwalkers; k++) {
            double m = 0;
            for (size_t t = 0; t < nsteps; t++) m += x[(t * nwalkers + k) * ndim + d];
            m /= (double)nsteps;
            for (size_t t = 0; t < nsteps; t++) buf[t] = x[(t * nwalkers + k) * ndim + d] - m;
            memset(buf + nsteps, 0, (nfft - nsteps) * sizeof *buf);
            gsl_fft_real_radix2_transform(buf, 1, nfft);
            /* Power spectrum in half-complex storage. */
            buf[0] = buf[0] * buf[0];
            buf[nfft / 2] = buf[nfft / 2] * buf[nfft / 2];
            for (size_t i = 1; i < nfft / 2; i++) {
                double re = buf[i], im = buf[nfft - i];
                buf[i] = re * re + im * im;
                buf[nfft - i] = 0.0;
            }
            gsl_fft_halfcomplex_radix2_backward(buf, 1, nfft);
            if (!(buf[0] > 0)) continue; /* constant walker */
            for (size_t t = 0; t < nsteps; t++) f[t] += buf[t] / buf[0];
            nused++;
        }
        if (!nused) {
            tau[d] = NAN;
            ok = 0;
            continue;
        }
        /* tau(M) = 2 cumsum(rho) - 1; window: first M with M >= c tau(M). */
        double cum = 0, taus = NAN;
        size_t M;
        for (M = 0; M < nsteps; M++) {
            cum += f[M] / (double)nused;
            taus = 2.0 * cum - 1.0;
            if ((double)M >= c * taus) break;
        }
        tau[d] = taus;
        if (M == nsteps) ok = 0; /* no window found: the chain is far too short */
        if (taus > taumax) taumax = taus;
    }
    free(buf);
    free(f);
    if (reliable) *reliable = ok && (double)nsteps >= SF_MCMC_TAU_FACTOR * taumax;
    return SF_OK;
}

sf_status sf_mcmc_split_rhat(const double *x, size_t nsteps, size_t nwalkers, size_t ndim, double *rhat)
{
    if (!x || !rhat) return SF_ERROR(SF_EINVAL, "NULL argument");
    if (nsteps < 4 || nwalkers < 1 || ndim < 1)
        return SF_ERROR(SF_EINVAL, "split-R-hat needs >= 4 steps (got %zu)", nsteps);
    const size_t n = nsteps / 2, m = 2 * nwalkers;
    for (size_t d = 0; d < ndim; d++) {
        double sum_mean = 0, sum_mean2 = 0, sum_var = 0;
        for (size_t k = 0; k < nwalkers; k++)
            for (int half = 0; half < 2; half++) {
                const size_t t0 = half ? nsteps - n : 0;
                double mu = 0, s2 = 0;
                for (size_t t = t0; t < t0 + n; t++) mu += x[(t * nwalkers + k) * ndim + d];
                mu /= (double)n;
                for (size_t t = t0; t < t0 + n; t++) {
                    double v = x[(t * nwalkers + k) * ndim + d] - mu;
                    s2 += v * v;
                }
                sum_var += s2 / (double)(n - 1);
                sum_mean += mu;
                sum_mean2 += mu * mu;
            }
        const double W = sum_var / (double)m;
        const double gm = sum_mean / (double)m;
        const double B_over_n = fmax(0.0, (sum_mean2 - (double)m * gm * gm) / (double)(m - 1));
        const double varp = (double)(n - 1) / (double)n * W + B_over_n;
        rhat[d] = W > 0 ? sqrt(varp / W) : NAN;
    }
    return SF_OK;
}

sf_status sf_mcmc_test(const sf_mcmc_chain *c, double ntau_min, double rhat_max, double *tau, double *rhat)
{
    if (!c) return SF_ERROR(SF_EINVAL, "NULL chain");
    if (!(ntau_min > 0)) ntau_min = SF_MCMC_TAU_FACTOR;
    if (!(rhat_max > 0)) rhat_max = 1.05;
    double *t = malloc(2 * c->ndim * sizeof *t);
    if (!t) return SF_ERROR(SF_ENOMEM, "diagnostics");
    double *r = t + c->ndim;
    sf_status st = sf_mcmc_autocorr_time(c->x, c->nsteps, c->nwalkers, c->ndim, 5.0, t, NULL);
    if (!st) st = sf_mcmc_split_rhat(c->x, c->nsteps, c->nwalkers, c->ndim, r);
    if (st) {
        free(t);
        return st;
    }
    if (tau) memcpy(tau, t, c->ndim * sizeof *t);
    if (rhat) memcpy(rhat, r, c->ndim * sizeof *r);
    double tmax = 0, rmax = 0;
    size_t dt = 0, dr = 0;
    int nan = 0;
    for (size_t d = 0; d < c->ndim; d++) {
        if (isnan(t[d]) || isnan(r[d])) nan = 1;
        if (t[d] > tmax) tmax = t[d], dt = d;
        if (r[d] > rmax) rmax = r[d], dr = d;
    }
    free(t);
    if (nan) return SF_ERROR(SF_ENOCONV, "a parameter is constant along the chain (tau or R-hat undefined)");
    if ((double)c->nsteps < ntau_min * tmax)
        return SF_ERROR(SF_ENOCONV, "chain of %zu steps is shorter than %g autocorrelation times (tau = %.3g for parameter %zu)",
                        c->nsteps, ntau_min, tmax, dt);
    if (rmax >= rhat_max)
        return SF_ERROR(SF_ENOCONV, "split-R-hat = %.4f >= %g for parameter %zu", rmax, rhat_max, dr);
    return SF_OK;
}

sf_status sf_mcmc_chain_moments(const sf_mcmc_chain *c, double *mean, double *cov)
{
    if (!c || !mean || !cov) return SF_ERROR(SF_EINVAL, "NULL argument");
    const size_t N = c->nsteps * c->nwalkers, nd = c->ndim;
    if (N < 2) return SF_ERROR(SF_EINVAL, "need >= 2 samples, chain has %zu", N);
    for (size_t d = 0; d < nd; d++) {
        double m = 0;
        for (size_t i = 0; i < N; i++) m += c->x[i * nd + d];
        mean[d] = m / (double)N;
    }
    for (size_t a = 0; a < nd; a++)
        for (size_t b = 0; b <= a; b++) {
            double s = 0;
            for (size_t i = 0; i < N; i++) s += (c->x[i * nd + a] - mean[a]) * (c->x[i * nd + b] - mean[b]);
            cov[a * nd + b] = cov[b * nd + a] = s / (double)(N - 1);
        }
    return SF_OK;
}
