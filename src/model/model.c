/*
 * The PROVABGS forward model (MODEL.md s3-s5): loading, parameter checks,
 * batched photometry and derived properties.
 *
 * Per batch of n galaxies: build the emulator inputs (u1..u3 from the betas,
 * tage(z), Zburst), run the NMF emulator for all rows and the burst emulator
 * only for rows with a burst (tburst < tage and fburst > 0), then per row
 *   L = 10^logmstar ((1 - fburst) exp(lnL_nmf) + fburst exp(lnL_burst))
 * and its AB fluxes.  All scratch lives in sf_model_work.
 */
#include "sedflow/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <omp.h>

#include "core/threads.h"

#include "core/blas.h"
#include "core/fastmath.h"
#include "io/h5util.h"
#include "model/emulator.h"
#include "model/photometry.h"
#include "model/sfh.h"
#include "sedflow/prior.h"

#define MODEL_FORMAT_VERSION 1
#define LSUN_ERG_S 3.846e33
#define WAVE_MIN_A 2305.0

const char *const sf_theta_names[SF_NTHETA] = {"logmstar", "beta1", "beta2", "beta3", "beta4", "fburst",
                                               "tburst", "gamma1", "gamma2", "tau_bc", "tau_ism", "n_dust"};
const char *const sf_band_names[SF_NBANDS] = {"u", "g", "r", "i", "z"};
const char *const sf_derived_names[SF_NDERIVED] = {"sfr_1gyr", "z_mw", "tage_mw_gyr"};

struct sf_model {
    sf_emulator nmf, burst;
    sf_nmf_basis basis;
    sf_filter filter[SF_NBANDS];
    sf_cosmo cosmo;
    double wave[SF_NWAVE]; /* rest-frame Angstrom */
};

struct sf_model_work {
    size_t batch_max;
    float *in_nmf;     /* (batch, 9) */
    float *in_burst;   /* (batch, 4) */
    int *burst_row;    /* (batch) row of each burst input */
    float *ln_nmf;     /* (batch, SF_NWAVE) */
    float *ln_burst;   /* (batch, SF_NWAVE) */
    float *emu_work;
    double *lum;       /* (SF_NWAVE) one row's L */
    double *tage;      /* (batch) age of the universe at each row's z [Gyr] */
};

void sf_model_free(sf_model *m)
{
    if (!m) return;
    sf_emulator_free(&m->nmf);
    sf_emulator_free(&m->burst);
    for (int b = 0; b < SF_NBANDS; b++) sf_filter_free(&m->filter[b]);
    sf_cosmo_free(&m->cosmo);
    free(m);
}

sf_status sf_model_load(const char *path, sf_model **out)
{
    *out = NULL;
    sf_blas_serial();
    char buf[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, sizeof buf, "%s/sedflow_model.h5", path);
        path = buf;
    }
    hid_t f;
    sf_status st = sf_h5_open_read(path, &f);
    if (st) return SF_ERROR(st, "cannot open model data '%s': run scripts/prepare_data.sh first", path);
    sf_model *m = calloc(1, sizeof *m);
    if (!m) {
        H5Fclose(f);
        return SF_ERROR(SF_ENOMEM, "out of memory");
    }
    long long version = 0;
    st = sf_h5_attr_get_long(f, ".", "format_version", &version);
    if (!st && version != MODEL_FORMAT_VERSION)
        st = SF_ERROR(SF_EFORMAT, "%s has format_version %lld, this sedflow reads %d: rerun scripts/prepare_data.sh",
                      path, version, MODEL_FORMAT_VERSION);
    if (!st) st = sf_emulator_load(f, "emulator/nmf", WAVE_MIN_A, &m->nmf);
    if (!st) st = sf_emulator_load(f, "emulator/burst", WAVE_MIN_A, &m->burst);
    if (!st && (m->nmf.n_out != SF_NWAVE || m->burst.n_out != SF_NWAVE || m->nmf.n_in != SF_NMF_NIN ||
                m->burst.n_in != SF_BURST_NIN))
        st = SF_ERROR(SF_EFORMAT, "%s: emulators have %d and %d wavelengths (expected %d)", path, m->nmf.n_out,
                      m->burst.n_out, SF_NWAVE);
    if (!st) st = sf_nmf_basis_load(f, &m->basis);
    for (int b = 0; !st && b < SF_NBANDS; b++) st = sf_filter_load(f, sf_band_names[b], &m->filter[b]);
    H5Fclose(f);
    if (!st) {
        /* the model grid: NMF wavelengths >= 2305 A, which must equal the burst grid */
        for (int s = 0; s < m->nmf.n_seg; s++) {
            const sf_emu_segment *g = &m->nmf.seg[s];
            memcpy(m->wave + g->offset, g->wave + g->skip, (size_t)(g->n_wave - g->skip) * sizeof(double));
        }
        for (int s = 0; !st && s < m->burst.n_seg; s++) {
            const sf_emu_segment *g = &m->burst.seg[s];
            for (int j = g->skip; j < g->n_wave; j++)
                if (fabs(g->wave[j] - m->wave[g->offset + j - g->skip]) > 1e-3) {
                    st = SF_ERROR(SF_EFORMAT, "burst and NMF wavelength grids differ at %g A", g->wave[j]);
                    break;
                }
        }
    }
    if (!st) st = sf_cosmo_init_planck13(&m->cosmo);
    if (st) {
        sf_model_free(m);
        return st;
    }
    *out = m;
    return SF_OK;
}

const double *sf_model_wave_rest(const sf_model *m) { return m->wave; }
const sf_cosmo *sf_model_cosmo(const sf_model *m) { return &m->cosmo; }

void sf_model_work_free(sf_model_work *w)
{
    if (!w) return;
    free(w->in_nmf);
    free(w->in_burst);
    free(w->burst_row);
    free(w->ln_nmf);
    free(w->ln_burst);
    free(w->emu_work);
    free(w->lum);
    free(w->tage);
    free(w);
}

sf_status sf_model_work_alloc(const sf_model *m, size_t batch_max, sf_model_work **out)
{
    *out = NULL;
    if (batch_max == 0) batch_max = 1;
    sf_model_work *w = calloc(1, sizeof *w);
    if (!w) return SF_ERROR(SF_ENOMEM, "out of memory");
    w->batch_max = batch_max;
    size_t ew = sf_emulator_work_floats(&m->nmf, batch_max), eb = sf_emulator_work_floats(&m->burst, batch_max);
    w->in_nmf = malloc(batch_max * SF_NMF_NIN * sizeof(float));
    w->in_burst = malloc(batch_max * SF_BURST_NIN * sizeof(float));
    w->burst_row = malloc(batch_max * sizeof(int));
    w->ln_nmf = malloc(batch_max * SF_NWAVE * sizeof(float));
    w->ln_burst = malloc(batch_max * SF_NWAVE * sizeof(float));
    w->emu_work = malloc((ew > eb ? ew : eb) * sizeof(float));
    w->lum = malloc(SF_NWAVE * sizeof(double));
    w->tage = malloc(batch_max * sizeof(double));
    if (!w->in_nmf || !w->in_burst || !w->burst_row || !w->ln_nmf || !w->ln_burst || !w->emu_work || !w->lum ||
        !w->tage) {
        sf_model_work_free(w);
        return SF_ERROR(SF_ENOMEM, "out of memory for a model workspace of %zu rows", batch_max);
    }
    *out = w;
    return SF_OK;
}

sf_status sf_model_check_theta(const double *theta, double z)
{
    for (int k = 0; k < SF_NTHETA; k++)
        if (!isfinite(theta[k])) return SF_ERROR(SF_EINVAL, "parameter %s is not finite (%g)", sf_theta_names[k], theta[k]);
    if (!(z > 0.0 && z <= SF_ZMAX_MODEL))
        return SF_ERROR(SF_EDOMAIN, "redshift z = %g outside (0, %g]: the emulator is trained for tage(z) with "
                        "0 <= z <= %g, and z <= 0 has no luminosity distance", z, SF_ZMAX_MODEL, SF_ZMAX_MODEL);
    double sum = 0;
    for (int i = 0; i < 4; i++) {
        if (theta[SF_TH_BETA1 + i] < 0) return SF_ERROR(SF_EINVAL, "beta%d = %g is negative", i + 1, theta[SF_TH_BETA1 + i]);
        sum += theta[SF_TH_BETA1 + i];
    }
    if (fabs(sum - 1.0) > 1e-6) return SF_ERROR(SF_EINVAL, "beta1..beta4 sum to %.9g, not 1", sum);
    if (theta[SF_TH_FBURST] < 0 || theta[SF_TH_FBURST] > 1)
        return SF_ERROR(SF_EINVAL, "fburst = %g outside [0, 1]", theta[SF_TH_FBURST]);
    if (!(theta[SF_TH_TBURST] > 0)) return SF_ERROR(SF_EINVAL, "tburst = %g Gyr is not positive", theta[SF_TH_TBURST]);
    if (!(theta[SF_TH_GAMMA1] > 0) || !(theta[SF_TH_GAMMA2] > 0))
        return SF_ERROR(SF_EINVAL, "gamma1 = %g, gamma2 = %g must be positive", theta[SF_TH_GAMMA1], theta[SF_TH_GAMMA2]);
    if (theta[SF_TH_TAU_BC] < 0 || theta[SF_TH_TAU_ISM] < 0)
        return SF_ERROR(SF_EINVAL, "tau_bc = %g, tau_ism = %g: optical depths must be >= 0", theta[SF_TH_TAU_BC],
                        theta[SF_TH_TAU_ISM]);
    return SF_OK;
}

static sf_status check_rows(size_t n, const double *theta, const double *z)
{
    for (size_t i = 0; i < n; i++) {
        sf_status st = sf_model_check_theta(theta + i * SF_NTHETA, z[i]);
        if (st) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", sf_last_error());
            return SF_ERROR(st, "row %zu: %s", i, msg);
        }
    }
    return SF_OK;
}

/* One chunk of at most w->batch_max rows (already checked). */
static void photometry_chunk(const sf_model *m, sf_model_work *w, size_t n, const double *theta,
                             const double *z, double *flux_nmgy, double *lum_rest)
{
    size_t nb = 0;
    double *tage = w->tage;
    for (size_t i = 0; i < n; i++) {
        const double *th = theta + i * SF_NTHETA;
        sf_cosmo_tage_gyr(&m->cosmo, z[i], &tage[i]);
        double u123[3];
        sf_beta_to_unitcube(th + SF_TH_BETA1, u123);
        float *in = w->in_nmf + i * SF_NMF_NIN;
        in[0] = (float)(u123[0] > 1e-8 ? u123[0] : 1e-8);
        in[1] = (float)u123[1];
        in[2] = (float)u123[2];
        in[3] = (float)th[SF_TH_GAMMA1];
        in[4] = (float)th[SF_TH_GAMMA2];
        in[5] = (float)th[SF_TH_TAU_BC];
        in[6] = (float)th[SF_TH_TAU_ISM];
        in[7] = (float)th[SF_TH_N_DUST];
        in[8] = (float)tage[i];
        if (th[SF_TH_TBURST] < tage[i] && th[SF_TH_FBURST] > 0) {
            double zb = sf_zh_eval(&m->basis, th[SF_TH_GAMMA1], th[SF_TH_GAMMA2], th[SF_TH_TBURST]);
            float *ib = w->in_burst + nb * SF_BURST_NIN;
            ib[0] = (float)log10(th[SF_TH_TBURST]);
            ib[1] = (float)log10(zb);
            ib[2] = (float)th[SF_TH_TAU_ISM];
            ib[3] = (float)th[SF_TH_N_DUST];
            w->burst_row[nb++] = (int)i;
        }
    }
    sf_emulator_eval(&m->nmf, n, w->in_nmf, w->ln_nmf, SF_NWAVE, w->emu_work);
    if (nb) sf_emulator_eval(&m->burst, nb, w->in_burst, w->ln_burst, SF_NWAVE, w->emu_work);
    size_t ib = 0;
    for (size_t i = 0; i < n; i++) {
        const double *th = theta + i * SF_NTHETA;
        double mstar = pow(10.0, th[SF_TH_LOGMSTAR]);
        double a = mstar * (1.0 - th[SF_TH_FBURST]);
        float *ln = w->ln_nmf + i * SF_NWAVE;
        for (int j = 0; j < SF_NWAVE; j++) ln[j] = sf_expf(ln[j]);
        double *lum = lum_rest ? lum_rest + i * SF_NWAVE : w->lum;
        if (ib < nb && w->burst_row[ib] == (int)i) {
            float *lb = w->ln_burst + ib * SF_NWAVE;
            for (int j = 0; j < SF_NWAVE; j++) lb[j] = sf_expf(lb[j]);
            double c = mstar * th[SF_TH_FBURST];
            for (int j = 0; j < SF_NWAVE; j++) lum[j] = a * (double)ln[j] + c * (double)lb[j];
            ib++;
        } else {
            for (int j = 0; j < SF_NWAVE; j++) lum[j] = a * (double)ln[j];
        }
        double dl;
        sf_cosmo_dlum_cm(&m->cosmo, z[i], &dl);
        double zp1 = 1.0 + z[i];
        double k = LSUN_ERG_S / (4.0 * M_PI * dl * dl) / zp1;
        for (int b = 0; b < SF_NBANDS; b++)
            flux_nmgy[i * SF_NBANDS + b] = 1e9 * sf_filter_maggies(&m->filter[b], m->wave, lum, SF_NWAVE, zp1, k);
    }
}

sf_status sf_model_photometry(const sf_model *m, sf_model_work *w, size_t n, const double *theta,
                              const double *z, double *flux_nmgy, double *lum_rest)
{
    sf_status st = check_rows(n, theta, z);
    if (st) return st;
    for (size_t i0 = 0; i0 < n; i0 += w->batch_max) {
        size_t c = n - i0 < w->batch_max ? n - i0 : w->batch_max;
        photometry_chunk(m, w, c, theta + i0 * SF_NTHETA, z + i0, flux_nmgy + i0 * SF_NBANDS,
                         lum_rest ? lum_rest + i0 * SF_NWAVE : NULL);
    }
    return SF_OK;
}

sf_status sf_model_photometry_omp(const sf_model *m, size_t n, const double *theta, const double *z,
                                  double *flux_nmgy, int nthreads)
{
    sf_status st = check_rows(n, theta, z);
    if (st) return st;
    nthreads = sf_nthreads(nthreads);
    const size_t chunk = 256; /* fixed: results do not depend on the thread count */
    size_t nchunks = (n + chunk - 1) / chunk;
    if ((size_t)nthreads > nchunks) nthreads = nchunks > 0 ? (int)nchunks : 1;
    int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
    {
        sf_model_work *w = NULL;
        if (sf_model_work_alloc(m, chunk, &w)) failed = 1;
        else {
#pragma omp for schedule(dynamic, 1)
            for (size_t c = 0; c < nchunks; c++) {
                size_t i0 = c * chunk, cn = n - i0 < chunk ? n - i0 : chunk;
                photometry_chunk(m, w, cn, theta + i0 * SF_NTHETA, z + i0, flux_nmgy + i0 * SF_NBANDS, NULL);
            }
        }
        sf_model_work_free(w);
    }
    if (failed) return SF_ERROR(SF_ENOMEM, "out of memory for per-thread model workspaces");
    return SF_OK;
}

sf_status sf_model_flambda_obs(const sf_model *m, double z, const double *lum_rest, double *f_obs)
{
    double dl;
    sf_status st = sf_cosmo_dlum_cm(&m->cosmo, z, &dl);
    if (st) return st;
    double k = LSUN_ERG_S / (4.0 * M_PI * dl * dl) / (1.0 + z);
    for (int j = 0; j < SF_NWAVE; j++) f_obs[j] = k * lum_rest[j];
    return SF_OK;
}

sf_status sf_model_derived(const sf_model *m, size_t n, const double *theta, const double *z, double *derived)
{
    sf_status st = check_rows(n, theta, z);
    if (st) return st;
    /* One plan per run of consecutive rows with the same z. */
    for (size_t i0 = 0, i1; i0 < n; i0 = i1) {
        for (i1 = i0 + 1; i1 < n && z[i1] == z[i0];) i1++;
        double tage;
        sf_cosmo_tage_gyr(&m->cosmo, z[i0], &tage);
        sf_sfh_plan plan;
        sf_sfh_plan_init(&m->basis, tage, &plan);
        sf_sfh_derived_plan(&plan, i1 - i0, theta + i0 * SF_NTHETA, derived + i0 * SF_NDERIVED);
    }
    return SF_OK;
}

static sf_status emulate(const sf_emulator *e, sf_model_work *w, size_t n, const double *in, float *ln_lum)
{
    for (size_t i0 = 0; i0 < n; i0 += w->batch_max) {
        size_t c = n - i0 < w->batch_max ? n - i0 : w->batch_max;
        for (size_t i = 0; i < c * (size_t)e->n_in; i++) {
            double v = in[i0 * (size_t)e->n_in + i];
            if (!isfinite(v)) return SF_ERROR(SF_EINVAL, "emulator input %zu is not finite", i0 * (size_t)e->n_in + i);
            w->in_nmf[i] = (float)v;
        }
        sf_emulator_eval(e, c, w->in_nmf, ln_lum + i0 * SF_NWAVE, SF_NWAVE, w->emu_work);
    }
    return SF_OK;
}

sf_status sf_model_emulate_nmf(const sf_model *m, sf_model_work *w, size_t n, const double *nmf_in, float *ln_lum)
{
    return emulate(&m->nmf, w, n, nmf_in, ln_lum);
}

sf_status sf_model_emulate_burst(const sf_model *m, sf_model_work *w, size_t n, const double *burst_in,
                                 float *ln_lum)
{
    return emulate(&m->burst, w, n, burst_in, ln_lum);
}
