/* Noise model (paper eq. 5): fit of median / standard deviation of the
 * magnitude error in magnitude bins, interpolation, and draws.  File I/O is
 * in noise_io.c.  Method: include/sedflow/noise.h and docs/CATALOG.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_statistics_double.h>

#include "sedflow/noise.h"
#include "sim/noise_priv.h"

#define NB SF_CATALOG_NBANDS

void sf_noise_fit_options_default(sf_noise_fit_options *opt)
{
    opt->bin_width_mag = 0.5;
    opt->min_count = 30;
    opt->min_snr = 5.0;
}

/* Row i usable for the fit: no reader flag and S/N >= min_snr in every band. */
static int usable(const sf_catalog *cat, size_t i, double min_snr)
{
    if (cat->flags[i] & SF_CAT_READER_MASK) return 0;
    for (int b = 0; b < NB; b++)
        if (!(cat->flux_nmgy[i * NB + b] * sqrt(cat->ivar_nmgy2[i * NB + b]) >= min_snr)) return 0;
    return 1;
}

void sf_noise_free(sf_noise *nm)
{
    if (!nm) return;
    for (int b = 0; b < NB; b++) {
        sf_noise_band *t = &nm->band[b];
        free(t->mag_lo);
        free(t->mag_hi);
        free(t->mag_centre);
        free(t->count);
        free(t->mu_sigma_mag);
        free(t->sigma_sigma_mag);
    }
    free(nm);
}

sf_status sf_noise__band_alloc(sf_noise_band *t, size_t nbin)
{
    size_t k = nbin ? nbin : 1;
    t->nbin = nbin;
    t->mag_lo = malloc(k * sizeof(double));
    t->mag_hi = malloc(k * sizeof(double));
    t->mag_centre = malloc(k * sizeof(double));
    t->count = malloc(k * sizeof(long long));
    t->mu_sigma_mag = malloc(k * sizeof(double));
    t->sigma_sigma_mag = malloc(k * sizeof(double));
    if (!t->mag_lo || !t->mag_hi || !t->mag_centre || !t->count || !t->mu_sigma_mag || !t->sigma_sigma_mag)
        return SF_ERROR(SF_ENOMEM, "noise table of %zu bins", nbin);
    return SF_OK;
}

typedef struct {
    double m, s;
} ms_pair;

static int cmp_m(const void *a, const void *b)
{
    const ms_pair *x = a, *y = b;
    return (x->m > y->m) - (x->m < y->m);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return gsl_stats_median_from_sorted_data(v, 1, n);
}

/* Fit one band from the sorted pairs p[0..n). */
static sf_status fit_band(sf_noise_band *t, ms_pair *p, size_t n, double w, size_t min_count)
{
    /* Bin boundaries as indices into p: pass 1 counts bins, pass 2 fills. */
    size_t *start = malloc((n + 1) * sizeof *start);
    double *hi = malloc((n + 1) * sizeof *hi);
    double *tmp = malloc(n * sizeof *tmp);
    sf_status st = SF_OK;
    if (!start || !hi || !tmp) {
        st = SF_ERROR(SF_ENOMEM, "noise fit of %zu rows", n);
        goto done;
    }
    size_t nbin = 0, i = 0, bin_start = 0;
    double lo0 = floor(p[0].m / w) * w;
    while (i < n) {
        /* extend by one fine bin: all rows with m < edge */
        double edge = (floor(p[i].m / w) + 1.0) * w;
        while (i < n && p[i].m < edge) i++;
        if (i - bin_start >= min_count) {
            start[nbin] = bin_start;
            hi[nbin] = edge;
            nbin++;
            bin_start = i;
        } else if (i == n) {
            /* faint remainder: join the previous bin, or be the only bin */
            if (nbin == 0) {
                start[nbin] = bin_start;
                nbin++;
            }
            hi[nbin - 1] = edge;
        }
    }
    start[nbin] = n;
    if ((st = sf_noise__band_alloc(t, nbin))) goto done;
    for (size_t k = 0; k < nbin; k++) {
        size_t a = start[k], c = start[k + 1] - start[k];
        t->mag_lo[k] = k == 0 ? lo0 : hi[k - 1];
        t->mag_hi[k] = hi[k];
        t->count[k] = (long long)c;
        for (size_t j = 0; j < c; j++) tmp[j] = p[a + j].m;
        t->mag_centre[k] = median(tmp, c);
        for (size_t j = 0; j < c; j++) tmp[j] = p[a + j].s;
        t->mu_sigma_mag[k] = median(tmp, c);
        t->sigma_sigma_mag[k] = c > 1 ? gsl_stats_sd(tmp, 1, c) : 0.0;
    }
done:
    free(start);
    free(hi);
    free(tmp);
    return st;
}

sf_status sf_noise_fit(const sf_catalog *cat, const sf_noise_fit_options *opt_in, const char *source,
                       sf_noise **out)
{
    sf_noise_fit_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        sf_noise_fit_options_default(&opt);
    if (!cat || !out) return SF_ERROR(SF_EINVAL, "NULL argument");
    *out = NULL;
    if (!(opt.bin_width_mag > 0) || !isfinite(opt.bin_width_mag))
        return SF_ERROR(SF_EINVAL, "bin width %g mag must be > 0", opt.bin_width_mag);
    if (opt.min_count < 2) return SF_ERROR(SF_EINVAL, "minimum count per bin %zu must be >= 2", opt.min_count);
    if (!(opt.min_snr >= 0) || !isfinite(opt.min_snr))
        return SF_ERROR(SF_EINVAL, "minimum S/N %g must be >= 0", opt.min_snr);
    size_t nv = 0;
    for (size_t i = 0; i < cat->n; i++) nv += usable(cat, i, opt.min_snr);
    if (nv < opt.min_count)
        return SF_ERROR(SF_EINVAL, "%zu usable catalog rows (valid, S/N >= %g), fewer than the minimum per bin %zu",
                        nv, opt.min_snr, opt.min_count);
    sf_noise *nm = calloc(1, sizeof *nm);
    ms_pair *p = malloc(nv * sizeof *p);
    if (!nm || !p) {
        free(nm);
        free(p);
        return SF_ERROR(SF_ENOMEM, "noise fit");
    }
    nm->bin_width_mag = opt.bin_width_mag;
    nm->min_count = (long long)opt.min_count;
    nm->n_rows = (long long)nv;
    nm->n_valid = (long long)sf_catalog_count_valid(cat);
    nm->min_snr = opt.min_snr;
    snprintf(nm->source, sizeof nm->source, "%s", source ? source : "");
    sf_status st = SF_OK;
    for (int b = 0; b < NB && !st; b++) {
        size_t k = 0;
        double fmin = INFINITY, fmax = -INFINITY;
        for (size_t i = 0; i < cat->n; i++) {
            if (!usable(cat, i, opt.min_snr)) continue;
            double f = cat->flux_nmgy[i * NB + b], iv = cat->ivar_nmgy2[i * NB + b];
            p[k].m = sf_catalog_nmgy_to_mag(f);
            p[k].s = sf_catalog_sigma_mag(f, iv);
            if (f < fmin) fmin = f;
            if (f > fmax) fmax = f;
            k++;
        }
        qsort(p, k, sizeof *p, cmp_m);
        sf_noise_band *t = &nm->band[b];
        t->nmgy_min = fmin;
        t->nmgy_max = fmax;
        t->mag_min = sf_catalog_nmgy_to_mag(fmax);
        t->mag_max = sf_catalog_nmgy_to_mag(fmin);
        st = fit_band(t, p, k, opt.bin_width_mag, opt.min_count);
    }
    free(p);
    if (st) {
        sf_noise_free(nm);
        return st;
    }
    *out = nm;
    return SF_OK;
}

void sf_noise_eval(const sf_noise *nm, int b, double mag, double *mu, double *sd)
{
    if (!nm || b < 0 || b >= NB || !isfinite(mag) || nm->band[b].nbin == 0) {
        *mu = *sd = NAN;
        return;
    }
    const sf_noise_band *t = &nm->band[b];
    const double *x = t->mag_centre;
    size_t n = t->nbin;
    if (mag <= x[0]) {
        *mu = t->mu_sigma_mag[0];
        *sd = t->sigma_sigma_mag[0];
        return;
    }
    if (mag >= x[n - 1]) {
        *mu = t->mu_sigma_mag[n - 1];
        *sd = t->sigma_sigma_mag[n - 1];
        return;
    }
    /* x[lo] < mag < x[hi] with hi = lo + 1 */
    size_t lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (x[mid] <= mag)
            lo = mid;
        else
            hi = mid;
    }
    double u = (mag - x[lo]) / (x[hi] - x[lo]);
    *mu = t->mu_sigma_mag[lo] + u * (t->mu_sigma_mag[hi] - t->mu_sigma_mag[lo]);
    *sd = t->sigma_sigma_mag[lo] + u * (t->sigma_sigma_mag[hi] - t->sigma_sigma_mag[lo]);
}

sf_status sf_noise_draw(const sf_noise *nm, int b, double mag, gsl_rng *r, unsigned max_tries, double *sigma_mag)
{
    *sigma_mag = NAN;
    if (!nm || !r || b < 0 || b >= NB) return SF_ERROR(SF_EINVAL, "band %d out of range 0..4 or NULL", b);
    if (!isfinite(mag)) return SF_ERROR(SF_EINVAL, "magnitude %g is not finite", mag);
    double mu, sd;
    sf_noise_eval(nm, b, mag, &mu, &sd);
    if (max_tries < 1) max_tries = 1;
    for (unsigned k = 0; k < max_tries; k++) {
        double s = mu + (sd > 0 ? gsl_ran_gaussian_ziggurat(r, sd) : 0.0);
        if (s > 0) {
            *sigma_mag = s;
            return SF_OK;
        }
    }
    return SF_ENOCONV;
}

int sf_noise_flux_in_range(const sf_noise *nm, const double *flux_nmgy)
{
    for (int b = 0; b < NB; b++) {
        double f = flux_nmgy[b];
        if (!(f >= nm->band[b].nmgy_min && f <= nm->band[b].nmgy_max)) return 0;
    }
    return 1;
}
