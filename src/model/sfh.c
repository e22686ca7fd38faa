/*
 * SFH and ZH in lookback-time bins and derived properties (MODEL.md s5).
 *
 * Bases are piecewise linear in lookback time with linear extrapolation, so
 * the bin means are exact integrals of the interpolant (the reference's
 * 50,000-point trapezoid agrees to ~1e-6).  For a galaxy of age tage:
 *   sfh_bin    = sum_i beta_i <SFH_i>_bin, normalised to sum(1e9 dt sfh) = 1,
 *   burst      (tburst < tage): sfh *= (1 - fburst); + fburst/(1e9 dt) in tburst's bin,
 *   Z_bin      = clip(gamma1 ZH1(t_mid) + gamma2 ZH2(t_mid)),
 *   sfr_1gyr   = 10^logmstar/1e9 [ (1-fburst') M_nmf(< 1 Gyr) + fburst [tburst < 1 Gyr] ],
 *   z_mw       = sum m_bin Z_bin,   tage_mw = sum m_bin t_mid   (m_bin: mass fractions).
 * Everything that depends on tage alone (bin edges, basis integrals over the
 * bins, ZH basis values at the bin centres) is computed once in an
 * sf_sfh_plan and shared by all galaxies of that age (the posterior samples
 * of one galaxy: ~20x faster than per sample).
 */
#include "model/sfh.h"

#include <math.h>

#include "io/h5util.h"
#include "sedflow/model.h"

static void basis_init(const double *t, sf_basis_fn *f)
{
    f->cum[0] = 0;
    for (int k = 1; k < SF_NMF_NT; k++) f->cum[k] = f->cum[k - 1] + 0.5 * (f->y[k] + f->y[k - 1]) * (t[k] - t[k - 1]);
}

sf_status sf_nmf_basis_load(hid_t file, sf_nmf_basis *b)
{
    double sfh[SF_NMF_NSFH * SF_NMF_NT], zh[SF_NMF_NZH * SF_NMF_NT];
    sf_status st;
    if ((st = sf_h5_read_double_into(file, "nmf_basis/t_lookback_gyr", SF_NMF_NT, b->t)) ||
        (st = sf_h5_read_double_into(file, "nmf_basis/sfh", SF_NMF_NSFH * SF_NMF_NT, sfh)) ||
        (st = sf_h5_read_double_into(file, "nmf_basis/zh", SF_NMF_NZH * SF_NMF_NT, zh)))
        return st;
    for (int k = 1; k < SF_NMF_NT; k++)
        if (!(b->t[k] > b->t[k - 1])) return SF_ERROR(SF_EFORMAT, "nmf_basis/t_lookback_gyr is not ascending");
    for (int i = 0; i < SF_NMF_NSFH; i++) {
        for (int k = 0; k < SF_NMF_NT; k++) b->sfh[i].y[k] = sfh[i * SF_NMF_NT + k];
        basis_init(b->t, &b->sfh[i]);
    }
    for (int i = 0; i < SF_NMF_NZH; i++) {
        for (int k = 0; k < SF_NMF_NT; k++) b->zh[i].y[k] = zh[i * SF_NMF_NT + k];
        basis_init(b->t, &b->zh[i]);
    }
    return SF_OK;
}

/* Segment index j in [0, NT-2] whose line covers x (end segments extend). */
static int segment_of(const double *t, double x)
{
    if (x <= t[1]) return 0;
    if (x >= t[SF_NMF_NT - 2]) return SF_NMF_NT - 2;
    int lo = 1, hi = SF_NMF_NT - 2; /* t[lo] <= x < t[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (t[mid] <= x) lo = mid;
        else hi = mid;
    }
    return lo;
}

double sf_basis_eval(const sf_nmf_basis *b, const sf_basis_fn *f, double x)
{
    int j = segment_of(b->t, x);
    double slope = (f->y[j + 1] - f->y[j]) / (b->t[j + 1] - b->t[j]);
    return f->y[j] + slope * (x - b->t[j]);
}

/* Antiderivative from t[0] to x of the extended interpolant. */
static double antideriv(const sf_nmf_basis *b, const sf_basis_fn *f, double x)
{
    int j = segment_of(b->t, x);
    double dx = x - b->t[j];
    double slope = (f->y[j + 1] - f->y[j]) / (b->t[j + 1] - b->t[j]);
    return f->cum[j] + f->y[j] * dx + 0.5 * slope * dx * dx;
}

double sf_basis_integral(const sf_nmf_basis *b, const sf_basis_fn *f, double lo, double hi)
{
    return antideriv(b, f, hi) - antideriv(b, f, lo);
}

int sf_sfh_bin_edges(double tage, double *edges)
{
    int n = 0;
    edges[n++] = 0.0;
    for (int k = 0; k <= 40; k++) {
        double e = pow(10.0, 6.05 + 0.1 * k - 9.0);
        if (e < tage) edges[n++] = e;
    }
    if (13.8 < tage) edges[n++] = 13.8;
    edges[n++] = tage;
    return n - 1;
}

double sf_zh_eval(const sf_nmf_basis *b, double gamma1, double gamma2, double t)
{
    double z = gamma1 * sf_basis_eval(b, &b->zh[0], t) + gamma2 * sf_basis_eval(b, &b->zh[1], t);
    return z < SF_ZMIN ? SF_ZMIN : (z > SF_ZMAX ? SF_ZMAX : z);
}

void sf_sfh_plan_init(const sf_nmf_basis *b, double tage, sf_sfh_plan *plan)
{
    plan->tage = tage;
    plan->nb = sf_sfh_bin_edges(tage, plan->edges);
    for (int k = 0; k < plan->nb; k++) {
        for (int i = 0; i < SF_NMF_NSFH; i++)
            plan->integral[i][k] = sf_basis_integral(b, &b->sfh[i], plan->edges[k], plan->edges[k + 1]);
        double tmid = 0.5 * (plan->edges[k] + plan->edges[k + 1]);
        for (int i = 0; i < SF_NMF_NZH; i++) plan->zh[i][k] = sf_basis_eval(b, &b->zh[i], tmid);
    }
}

static void derived_one(const sf_sfh_plan *plan, const double *theta, double *out)
{
    const int nb = plan->nb;
    const double *edges = plan->edges;
    double mass[SF_SFH_MAXBINS];
    const double *beta = theta + SF_TH_BETA1;
    double fburst = theta[SF_TH_FBURST], tburst = theta[SF_TH_TBURST];
    double total = 0, m_1gyr = 0;
    /* NMF mass per bin: sum_i beta_i * integral of basis i over the bin. */
    for (int k = 0; k < nb; k++) {
        double m = 0;
        for (int i = 0; i < SF_NMF_NSFH; i++) m += beta[i] * plan->integral[i][k];
        mass[k] = m;
        total += m;
    }
    for (int k = 0; k < nb; k++) {
        mass[k] /= total;
        double lo = edges[k], hi = edges[k + 1];
        if (hi <= 1.0) m_1gyr += mass[k];
        else if (lo < 1.0) m_1gyr += mass[k] * (1.0 - lo) / (hi - lo);
    }
    int burst = tburst < plan->tage;
    double fb = burst ? fburst : 0.0;
    double sfr = (1.0 - fb) * m_1gyr + ((burst && tburst < 1.0) ? fburst : 0.0);
    for (int k = 0; k < nb; k++) mass[k] *= 1.0 - fb;
    if (burst)
        for (int k = 0; k < nb; k++)
            if (tburst >= edges[k] && tburst < edges[k + 1]) {
                mass[k] += fb;
                break;
            }
    double zmw = 0, tmw = 0;
    const double g1 = theta[SF_TH_GAMMA1], g2 = theta[SF_TH_GAMMA2];
    for (int k = 0; k < nb; k++) {
        double tmid = 0.5 * (edges[k] + edges[k + 1]);
        double zk = g1 * plan->zh[0][k] + g2 * plan->zh[1][k]; /* = sf_zh_eval at tmid */
        zk = zk < SF_ZMIN ? SF_ZMIN : (zk > SF_ZMAX ? SF_ZMAX : zk);
        zmw += mass[k] * zk;
        tmw += mass[k] * tmid;
    }
    out[0] = sfr * pow(10.0, theta[SF_TH_LOGMSTAR]) / 1e9;
    out[1] = zmw;
    out[2] = tmw;
}

void sf_sfh_derived_plan(const sf_sfh_plan *plan, size_t n, const double *theta, double *out)
{
    for (size_t i = 0; i < n; i++) derived_one(plan, theta + i * SF_NTHETA, out + i * SF_NDERIVED);
}
