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
 * of one galaxy: ~20x faster than per sample).  The samples of a plan are
 * processed in tiles of 64 with the samples along the inner loops, which
 * vectorise, each sample's operations unchanged and in the same order, so
 * a batch is bit-identical to one sample at a time (tests/test_model.c):
 * 10,000 samples 2.5 -> 1.6 CPU-ms.
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

/* Derived properties of n <= TILE samples, the samples along the inner
 * loops (so they vectorise), each sample's arithmetic exactly that of the
 * one-sample formula in the header comment, in the same order:
 *   mass_k  = ((0 + b1 I1k) + b2 I2k + b3 I3k) + b4 I4k,   total = sum_k mass_k,
 *   mass_k /= total,   m_1gyr = sum over bins below 1 Gyr (the straddling bin
 *   (mass_k (1 - lo)) / (hi - lo)),   sfr = (1 - fb) m_1gyr + (burst < 1 Gyr ? fburst : 0),
 *   mass_k *= 1 - fb,  + fb in tburst's bin,   z_mw, tage_mw = sum_k in order. */
#define TILE 64
static void derived_tile(const sf_sfh_plan *plan, size_t n, const double *theta, double *out)
{
    const int nb = plan->nb;
    const double *edges = plan->edges, tage = plan->tage;
    double mass[SF_SFH_MAXBINS][TILE], beta[SF_NMF_NSFH][TILE], total[TILE], m1[TILE], fb[TILE], sfr[TILE];
    double g1[TILE], g2[TILE], zmw[TILE], tmw[TILE];
    for (size_t t = 0; t < n; t++) {
        const double *th = theta + t * SF_NTHETA;
        for (int i = 0; i < SF_NMF_NSFH; i++) beta[i][t] = th[SF_TH_BETA1 + i];
        const double fburst = th[SF_TH_FBURST], tburst = th[SF_TH_TBURST];
        const int burst = tburst < tage;
        fb[t] = burst ? fburst : 0.0;
        sfr[t] = (burst && tburst < 1.0) ? fburst : 0.0; /* the burst's share of sfr_1gyr */
        g1[t] = th[SF_TH_GAMMA1];
        g2[t] = th[SF_TH_GAMMA2];
        total[t] = m1[t] = zmw[t] = tmw[t] = 0;
    }
    /* NMF mass per bin: sum_i beta_i * integral of basis i over the bin. */
    for (int k = 0; k < nb; k++) {
        const double i0 = plan->integral[0][k], i1 = plan->integral[1][k], i2 = plan->integral[2][k],
                     i3 = plan->integral[3][k];
        for (size_t t = 0; t < n; t++) {
            double m = 0;
            m += beta[0][t] * i0;
            m += beta[1][t] * i1;
            m += beta[2][t] * i2;
            m += beta[3][t] * i3;
            mass[k][t] = m;
            total[t] += m;
        }
    }
    for (int k = 0; k < nb; k++) {
        const double lo = edges[k], hi = edges[k + 1];
        if (hi <= 1.0)
            for (size_t t = 0; t < n; t++) m1[t] += mass[k][t] /= total[t];
        else if (lo < 1.0)
            for (size_t t = 0; t < n; t++) m1[t] += (mass[k][t] /= total[t]) * (1.0 - lo) / (hi - lo);
        else
            for (size_t t = 0; t < n; t++) mass[k][t] /= total[t];
    }
    for (size_t t = 0; t < n; t++) sfr[t] = (1.0 - fb[t]) * m1[t] + sfr[t];
    for (int k = 0; k < nb; k++)
        for (size_t t = 0; t < n; t++) mass[k][t] *= 1.0 - fb[t];
    for (size_t t = 0; t < n; t++) {
        const double tburst = theta[t * SF_NTHETA + SF_TH_TBURST];
        if (tburst < tage)
            for (int k = 0; k < nb; k++)
                if (tburst >= edges[k] && tburst < edges[k + 1]) {
                    mass[k][t] += fb[t];
                    break;
                }
    }
    for (int k = 0; k < nb; k++) {
        const double tmid = 0.5 * (edges[k] + edges[k + 1]), z1 = plan->zh[0][k], z2 = plan->zh[1][k];
        for (size_t t = 0; t < n; t++) {
            double zk = g1[t] * z1 + g2[t] * z2; /* = sf_zh_eval at tmid */
            zk = zk < SF_ZMIN ? SF_ZMIN : (zk > SF_ZMAX ? SF_ZMAX : zk);
            zmw[t] += mass[k][t] * zk;
            tmw[t] += mass[k][t] * tmid;
        }
    }
    for (size_t t = 0; t < n; t++) {
        out[t * SF_NDERIVED + 0] = sfr[t] * pow(10.0, theta[t * SF_NTHETA + SF_TH_LOGMSTAR]) / 1e9;
        out[t * SF_NDERIVED + 1] = zmw[t];
        out[t * SF_NDERIVED + 2] = tmw[t];
    }
}

void sf_sfh_derived_plan(const sf_sfh_plan *plan, size_t n, const double *theta, double *out)
{
    for (size_t i = 0; i < n; i += TILE)
        derived_tile(plan, n - i < TILE ? n - i : TILE, theta + i * SF_NTHETA, out + i * SF_NDERIVED);
}
