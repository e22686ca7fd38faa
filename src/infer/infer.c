/*
 * sedflow infer, the library part (sedflow/infer.h): the plan (flow, SFH
 * bases, cosmology, noise model, support), per-galaxy context and checks
 * before sampling (SEDflow Appendix A), and sampling of a block of galaxies
 * on OpenMP threads with summaries and the leakage flag.
 */
#include "sedflow/infer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <omp.h>

#include "core/threads.h"

#include "core/blas.h"
#include "infer/infer_priv.h"
#include "io/h5util.h"
#include "sedflow/model.h"
#include "sedflow/prior.h"
#include "sedflow/rng.h"

const char *const sf_infer_q_names[SF_INFER_NQ] = {
    "logmstar", "beta1", "beta2", "beta3", "beta4", "fburst", "tburst", "gamma1",
    "gamma2", "tau_bc", "tau_ism", "n_dust", "log_sfr_1gyr", "log_z_mw", "tage_mw"};
const char *const sf_infer_q_units[SF_INFER_NQ] = {
    "log10 Msun", "", "", "", "", "", "Gyr", "", "", "", "", "", "log10 Msun/yr", "log10 Z", "Gyr"};
const char *const sf_infer_q_descriptions[SF_INFER_NQ] = {
    "log10 of the total stellar mass formed (= log_mstar)",
    "SFH NMF weight 1 (betas sum to 1)",
    "SFH NMF weight 2",
    "SFH NMF weight 3",
    "SFH NMF weight 4",
    "fraction of the stellar mass formed in the starburst",
    "lookback time of the starburst",
    "ZH NMF weight 1",
    "ZH NMF weight 2",
    "optical depth of the birth clouds (Charlot & Fall)",
    "optical depth of the diffuse ISM",
    "dust attenuation curve slope offset",
    "log10 of the star-formation rate averaged over the last 1 Gyr",
    "log10 of the mass-weighted metallicity (absolute Z)",
    "mass-weighted stellar age"};

const char *sf_infer_flag_name(uint32_t bit)
{
    switch (bit) {
    case SF_INFER_Z_RANGE: return "redshift outside the trained range";
    case SF_INFER_SIGMA_HIGH: return "sigma unusually high for its magnitude";
    case SF_INFER_BLUE: return "colour bluer than the training set";
    case SF_INFER_LEAKAGE: return "leakage: flow mass outside the prior box or trained range";
    case SF_INFER_FEW_SAMPLES: return "fewer samples than requested";
    case SF_INFER_NOT_SAMPLED: return "not sampled by the flow";
    case SF_INFER_MCMC: return "posterior from the MCMC fallback";
    case SF_INFER_MCMC_NOCONV: return "MCMC chain not converged";
    case SF_INFER_MCMC_FAILED: return "MCMC fallback failed";
    default: return sf_catalog_flag_name(bit);
    }
}

void sf_infer_options_default(sf_infer_options *opt)
{
    opt->n_samples = 10000;
    opt->seed = 1;
    opt->nthreads = 0;
    opt->min_acceptance = 0.5;
    opt->max_proposals = 0;
    opt->skip_flagged = 0;
    opt->sigma_nsd = 3.0;
}

uint64_t sf_infer_galaxy_seed(uint64_t seed, uint64_t row) { return sf_mix64(seed ^ sf_mix64(row + 1)); }

void sf_infer_free(sf_infer *p)
{
    if (!p) return;
    sf_flow_free(p->flow);
    sf_noise_free(p->noise);
    if (p->have_cosmo) sf_cosmo_free(&p->cosmo);
    free(p);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *c = data;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_flow(sf_flow *f)
{
    const sf_flow_config *c = sf_flow_get_config(f);
    uint64_t h = 1469598103934665603ull;
    h = fnv1a(h, sf_flow_params(f), sf_flow_n_params(f) * sizeof(float));
    double z[4][64];
    if (c->D <= 64 && c->C <= 64) {
        sf_flow_get_zscore(f, z[0], z[1], z[2], z[3]);
        h = fnv1a(h, z[0], (size_t)c->D * sizeof(double));
        h = fnv1a(h, z[1], (size_t)c->D * sizeof(double));
        h = fnv1a(h, z[2], (size_t)c->C * sizeof(double));
        h = fnv1a(h, z[3], (size_t)c->C * sizeof(double));
    }
    return h;
}

sf_status sf_infer_alloc(const char *model_path, const char *data_path, const char *noise_path,
                         const sf_infer_options *opt, sf_infer **out)
{
    *out = NULL;
    sf_blas_serial();
    sf_infer *p = calloc(1, sizeof *p);
    if (!p) return SF_ERROR(SF_ENOMEM, "out of memory");
    if (opt) p->opt = *opt;
    else sf_infer_options_default(&p->opt);
    sf_infer_options *o = &p->opt;
    sf_status st = SF_OK;
    if (o->n_samples < 1 || o->n_samples > 100000000)
        st = SF_ERROR(SF_EINVAL, "n_samples = %zu must be in [1, 1e8]", o->n_samples);
    else if (!(o->min_acceptance >= 0 && o->min_acceptance <= 1))
        st = SF_ERROR(SF_EINVAL, "min_acceptance = %g must be in [0, 1]", o->min_acceptance);
    else if (o->max_proposals && o->max_proposals < o->n_samples)
        st = SF_ERROR(SF_EINVAL, "max_proposals %zu < n_samples %zu", o->max_proposals, o->n_samples);
    else if (!(o->sigma_nsd > 0)) st = SF_ERROR(SF_EINVAL, "sigma_nsd = %g must be positive", o->sigma_nsd);
    if (st) {
        free(p);
        return st;
    }
    if (!o->max_proposals) o->max_proposals = 10 * o->n_samples;
    st = sf_flow_load(model_path, &p->flow);
    if (!st) {
        const sf_flow_config *c = sf_flow_get_config(p->flow);
        if (c->D != SF_NU || c->C != 11)
            st = SF_ERROR(SF_EFORMAT, "%s: a flow with D = %d, C = %d; sedflow infer needs D = 11 (sampling space) "
                          "and C = 11 (ugriz mags, sigmas, z)", model_path, c->D, c->C);
    }
    if (!st) {
        sf_flow_get_prior(p->flow, p->lower, p->upper);
        for (int d = 0; d < SF_NU && !st; d++)
            if (!(p->lower[d] >= sf_prior_lower[d] - 1e-9 && p->upper[d] <= sf_prior_upper[d] + 1e-9 &&
                  p->lower[d] < p->upper[d]))
                st = SF_ERROR(SF_EFORMAT, "%s: prior box of %s [%g, %g] is not inside the model prior [%g, %g]",
                              model_path, sf_u_names[d], p->lower[d], p->upper[d], sf_prior_lower[d], sf_prior_upper[d]);
    }
    if (!st) {
        p->model_hash = hash_flow(p->flow);
        sf_flow_prepare(p->flow); /* sf_flow_params() marked it unprepared */
    }
    if (!st) st = sf_infer_support_read(model_path, &p->support);
    if (!st) st = sf_noise_load(noise_path, &p->noise);
    if (!st) {
        char buf[4096];
        struct stat sb;
        if (stat(data_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            snprintf(buf, sizeof buf, "%s/sedflow_model.h5", data_path);
            data_path = buf;
        }
        hid_t f;
        st = sf_h5_open_read(data_path, &f);
        if (st) st = SF_ERROR(st, "cannot open model data '%s': run scripts/prepare_data.sh first", data_path);
        else {
            st = sf_nmf_basis_load(f, &p->basis);
            H5Fclose(f);
        }
    }
    if (!st) {
        st = sf_cosmo_init_planck13(&p->cosmo);
        p->have_cosmo = !st;
    }
    if (st) {
        sf_infer_free(p);
        return st;
    }
    *out = p;
    return SF_OK;
}

const sf_infer_options *sf_infer_get_options(const sf_infer *p) { return &p->opt; }
const sf_infer_support *sf_infer_get_support(const sf_infer *p) { return &p->support; }
const sf_flow *sf_infer_get_flow(const sf_infer *p) { return p->flow; }
uint64_t sf_infer_model_hash(const sf_infer *p) { return p->model_hash; }



/* ---- context and checks ------------------------------------------------ */

/* Append "; " + text to a reason buffer ("ok" is replaced). */
void sf_infer_reason_add(char *r, const char *text)
{
    size_t pos = 0;
    if (strcmp(r, "ok") && r[0]) {
        pos = strlen(r);
        for (const char *s = "; "; *s && pos + 1 < SF_INFER_REASON_LEN; s++) r[pos++] = *s;
    }
    while (*text && pos + 1 < SF_INFER_REASON_LEN) r[pos++] = *text++; /* truncated, always terminated */
    r[pos] = '\0';
}

void sf_infer_input_free(sf_infer_input *in)
{
    if (!in) return;
    free(in->x);
    free(in->flags);
    free(in->reason);
    free(in->sample);
    free(in);
}

static void check_row(const sf_infer *p, const sf_catalog *cat, size_t i, double *x, uint32_t *flags_out, char *r,
                      unsigned char *sample)
{
    const sf_infer_support *s = &p->support;
    uint32_t fl = cat->flags[i];
    if (fl) sf_catalog_row_reason(cat, i, r, SF_INFER_REASON_LEN);
    else snprintf(r, SF_INFER_REASON_LEN, "ok");
    for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
        double f = cat->flux_nmgy[i * SF_CATALOG_NBANDS + b], iv = cat->ivar_nmgy2[i * SF_CATALOG_NBANDS + b];
        x[b] = sf_catalog_nmgy_to_mag(f);
        x[SF_CATALOG_NBANDS + b] = sf_catalog_sigma_mag(f, iv);
        if (!isfinite(x[b]) || !isfinite(x[SF_CATALOG_NBANDS + b])) x[b] = x[SF_CATALOG_NBANDS + b] = NAN;
    }
    double z = cat->z[i];
    x[10] = isfinite(z) ? z : NAN;
    char t[SF_INFER_REASON_LEN];
    /* redshift range: z <= 0 is never in the training set (U(z_min, z_max) excludes 0) */
    if (isfinite(z) && (z <= 0 || z < s->z_min || z > s->z_max)) {
        fl |= SF_INFER_Z_RANGE;
        snprintf(t, sizeof t, "z = %.4g outside the trained range (%g, %g]", z, s->z_min, s->z_max);
        sf_infer_reason_add(r, t);
    }
    /* sigma unusually high for its magnitude (Appendix A) */
    {
        int n = 0;
        size_t pos = 0;
        t[0] = '\0';
        for (int b = 0; b < SF_CATALOG_NBANDS; b++) {
            double m = x[b], sg = x[SF_CATALOG_NBANDS + b], mu, sd;
            if (!isfinite(m) || !isfinite(sg)) continue;
            sf_noise_eval(p->noise, b, m, &mu, &sd);
            double lim = mu + p->opt.sigma_nsd * sd;
            if (sg > lim && pos < sizeof t) {
                pos += (size_t)snprintf(t + pos, sizeof t - pos, "%ssigma_%c %.3g > %.3g mag", n ? ", " : "",
                                        sf_catalog_band_names[b], sg, lim);
                n++;
            }
        }
        if (n) {
            char u[SF_INFER_REASON_LEN];
            fl |= SF_INFER_SIGMA_HIGH;
            snprintf(u, sizeof u, "sigma unusually high for its magnitude [%.180s]", t);
            sf_infer_reason_add(r, u);
        }
    }
    /* colour bluer than the training set's quantile (Appendix A) */
    if (s->has_colour) {
        int n = 0;
        size_t pos = 0;
        t[0] = '\0';
        for (int c = 0; c < SF_INFER_NCOLOUR; c++) {
            double col = x[c] - x[c + 1];
            if (isfinite(col) && col < s->colour_min[c] && pos < sizeof t) {
                pos += (size_t)snprintf(t + pos, sizeof t - pos, "%s%c-%c: %.3f < %.3f", n ? ", " : "",
                                        sf_catalog_band_names[c], sf_catalog_band_names[c + 1], col, s->colour_min[c]);
                n++;
            }
        }
        if (n) {
            char u[SF_INFER_REASON_LEN];
            fl |= SF_INFER_BLUE;
            snprintf(u, sizeof u, "colour bluer than the training set's %g percentile [%.180s]", 100 * s->colour_quantile, t);
            sf_infer_reason_add(r, u);
        }
    }
    int finite = 1;
    for (int k = 0; k < 11; k++) finite &= isfinite(x[k]) != 0;
    const char *why = NULL;
    if (!finite) why = "not sampled: x (mags, sigmas, z) undefined";
    else if (!(z > 0 && z <= SF_ZMAX_MODEL)) why = "not sampled: z outside the forward model's (0, 0.6]";
    else if (p->opt.skip_flagged && fl) why = "not sampled: flagged (--skip-flagged)";
    *sample = why == NULL;
    if (why) {
        fl |= SF_INFER_NOT_SAMPLED;
        sf_infer_reason_add(r, why);
    }
    *flags_out = fl;
}

sf_status sf_infer_prepare(const sf_infer *p, const sf_catalog *cat, sf_infer_input **out)
{
    *out = NULL;
    sf_infer_input *in = calloc(1, sizeof *in);
    size_t n = cat->n, n1 = n ? n : 1;
    if (in) {
        in->n = n;
        in->x = malloc(n1 * 11 * sizeof(double));
        in->flags = malloc(n1 * sizeof(uint32_t));
        in->reason = malloc(n1 * SF_INFER_REASON_LEN);
        in->sample = malloc(n1);
    }
    if (!in || !in->x || !in->flags || !in->reason || !in->sample) {
        sf_infer_input_free(in);
        return SF_ERROR(SF_ENOMEM, "out of memory for %zu galaxies", n);
    }
    for (size_t i = 0; i < n; i++)
        check_row(p, cat, i, in->x + i * 11, &in->flags[i], in->reason + i * SF_INFER_REASON_LEN, &in->sample[i]);
    *out = in;
    return SF_OK;
}

/* ---- sampling ----------------------------------------------------------- */

void sf_infer_block_free(sf_infer_block *b)
{
    if (!b) return;
    free(b->samples);
    free(b->summary);
    free(b->acceptance);
    free(b->n_accepted);
    free(b->flags);
    free(b->reason);
    free(b);
}

sf_status sf_infer_block_alloc(const sf_infer *p, size_t cap, sf_infer_block **out)
{
    *out = NULL;
    if (cap < 1) return SF_ERROR(SF_EINVAL, "block capacity must be >= 1");
    sf_infer_block *b = calloc(1, sizeof *b);
    if (!b) return SF_ERROR(SF_ENOMEM, "out of memory");
    const size_t N = p->opt.n_samples;
    b->cap = cap;
    b->n_samples = N;
    b->samples = malloc((size_t)SF_INFER_NQ * cap * N * sizeof(float));
    b->summary = malloc(cap * SF_INFER_NQ * 3 * sizeof(double));
    b->acceptance = malloc(cap * sizeof(double));
    b->n_accepted = malloc(cap * sizeof(long long));
    b->flags = malloc(cap * sizeof(uint32_t));
    b->reason = malloc(cap * SF_INFER_REASON_LEN);
    if (!b->samples || !b->summary || !b->acceptance || !b->n_accepted || !b->flags || !b->reason) {
        sf_infer_block_free(b);
        return SF_ERROR(SF_ENOMEM, "out of memory for a block of %zu galaxies x %zu samples", cap, N);
    }
    *out = b;
    return SF_OK;
}

void sf_infer_work_free(sf_infer_work *w)
{
    free(w->u);
    free(w->theta);
    free(w->der);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

int sf_infer_work_alloc(sf_infer_work *w, size_t N)
{
    w->u = malloc(N * SF_NU * sizeof(double));
    w->theta = malloc(N * SF_NTHETA * sizeof(double));
    w->der = malloc(N * SF_NDERIVED * sizeof(double));
    w->tmp = malloc(N * sizeof(double));
    return w->u && w->theta && w->der && w->tmp ? 0 : -1;
}

/* Value of quantity q for sample k. */
static inline double q_value(const sf_infer_work *w, int q, size_t k)
{
    if (q < SF_NTHETA) return w->theta[k * SF_NTHETA + q];
    double d = w->der[k * SF_NDERIVED + (q - SF_NTHETA)];
    return q < SF_NTHETA + 2 ? log10(d) : d;
}

sf_status sf_infer_store(const sf_infer *p, sf_infer_work *w, size_t nacc, double z, size_t slot, sf_infer_block *b)
{
    const size_t N = p->opt.n_samples, cap = b->cap;
    double *sum = b->summary + slot * SF_INFER_NQ * 3;
    if (nacc > N) nacc = N;
    if (nacc > 0) {
        for (size_t k = 0; k < nacc; k++) sf_u_to_theta(w->u + k * SF_NU, w->theta + k * SF_NTHETA);
        sf_status st = sf_infer_derived(p, nacc, w->theta, z, w->der);
        if (st) return st;
    }
    static const double qs[3] = {0.16, 0.5, 0.84};
    for (int q = 0; q < SF_INFER_NQ; q++) {
        float *dst = b->samples + ((size_t)q * cap + slot) * N;
        for (size_t k = 0; k < nacc; k++) {
            double v = q_value(w, q, k);
            dst[k] = (float)v;
            w->tmp[k] = v;
        }
        for (size_t k = nacc; k < N; k++) dst[k] = NAN;
        sf_infer_quantiles(w->tmp, nacc, qs, 3, sum + q * 3);
    }
    b->n_accepted[slot] = (long long)nacc;
    return SF_OK;
}

/* The support measure of a logit-map flow, which never leaves the prior
 * box: the fraction of the n draws u (n x 11) that lie at least
 * SF_INFER_EDGE_P of the box width inside every face, i.e. |v| <= 13.8 in
 * the flow's own coordinates, the range of ~10^6 uniform training draws.
 * Mass beyond is where the flow extrapolates, as leakage is for an
 * identity-map flow.  NaN when n = 0. */
static double inner_fraction(const sf_infer *p, const double *u, size_t n)
{
    size_t in = 0;
    for (size_t k = 0; k < n; k++) {
        int ok = 1;
        for (int d = 0; d < SF_NU && ok; d++) {
            const double t = (u[k * SF_NU + d] - p->lower[d]) / (p->upper[d] - p->lower[d]);
            ok = t >= SF_INFER_EDGE_P && t <= 1 - SF_INFER_EDGE_P;
        }
        in += (size_t)ok;
    }
    return n > 0 ? (double)in / (double)n : NAN;
}

static sf_status run_galaxy(const sf_infer *p, const sf_infer_input *in, size_t gi, size_t slot, sf_infer_block *b,
                            sf_infer_work *w)
{
    const size_t N = p->opt.n_samples;
    uint32_t fl = in->flags[gi];
    char *r = b->reason + slot * SF_INFER_REASON_LEN;
    memcpy(r, in->reason + gi * SF_INFER_REASON_LEN, SF_INFER_REASON_LEN);
    size_t nacc = 0;
    double frac = NAN;
    const double *x = in->x + gi * 11;
    if (in->sample[gi]) {
        sf_status st = sf_flow_sample(p->flow, 1, x, N, sf_infer_galaxy_seed(p->opt.seed, gi), p->lower, p->upper,
                                      p->opt.max_proposals, w->u, NULL, &nacc, &frac, 1);
        if (st) return st;
        const int logit = sf_flow_get_config(p->flow)->theta_map == SF_FLOW_THETA_LOGIT;
        if (logit) frac = inner_fraction(p, w->u, nacc);
        char t[160];
        if (frac < p->opt.min_acceptance) {
            fl |= SF_INFER_LEAKAGE;
            snprintf(t, sizeof t, logit ? "low fraction of samples inside the trained range: %.3g < %g"
                                        : "low acceptance of in-prior samples: %.3g < %g",
                     frac, p->opt.min_acceptance);
            sf_infer_reason_add(r, t);
        }
        if (nacc < N) {
            fl |= SF_INFER_FEW_SAMPLES;
            snprintf(t, sizeof t, "only %zu of %zu samples accepted within %zu proposals", nacc, N, p->opt.max_proposals);
            sf_infer_reason_add(r, t);
        }
    }
    sf_status st = sf_infer_store(p, w, nacc, x[10], slot, b);
    if (st) return st;
    b->acceptance[slot] = frac;
    b->flags[slot] = fl;
    return SF_OK;
}

sf_status sf_infer_run_block(const sf_infer *p, const sf_infer_input *in, size_t g0, size_t n, sf_infer_block *b)
{
    if (n > b->cap || g0 + n > in->n || b->n_samples != p->opt.n_samples)
        return SF_ERROR(SF_EINVAL, "block of %zu galaxies from %zu does not fit (capacity %zu, %zu galaxies)", n, g0,
                        b->cap, in->n);
    double t0 = omp_get_wtime();
    int nt = sf_nthreads(p->opt.nthreads);
    if ((size_t)nt > n) nt = n > 0 ? (int)n : 1;
    sf_status first = SF_OK;
    char msg[1024] = "";
#pragma omp parallel num_threads(nt)
    {
        sf_infer_work w = {0};
        int ok = sf_infer_work_alloc(&w, p->opt.n_samples) == 0;
        if (!ok) {
#pragma omp critical(sf_infer_err)
            if (!first) {
                first = SF_ENOMEM;
                snprintf(msg, sizeof msg, "out of memory for the sampling workspace (%zu samples)", p->opt.n_samples);
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t g = 0; g < n; g++) {
            if (!ok) continue;
            sf_status st = run_galaxy(p, in, g0 + g, g, b, &w);
            if (st) {
#pragma omp critical(sf_infer_err)
                if (!first) {
                    first = st;
                    snprintf(msg, sizeof msg, "galaxy %zu: %s", g0 + g, sf_last_error());
                }
            }
        }
        sf_infer_work_free(&w);
    }
    b->n = n;
    b->seconds = omp_get_wtime() - t0;
    if (first) return SF_ERROR(first, "%s", msg);
    return SF_OK;
}
