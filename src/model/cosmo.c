/*
 * Planck13 flat LCDM with radiation and one massive neutrino, as astropy's
 * FlatLambdaCDM (MODEL.md s2).
 *
 *   E(z)^2 = Om0 (1+z)^3 + Ogamma0 (1+z)^4 (1 + nu_rel(z)) + Ode0,
 *   Ode0   = 1 - Om0 - Ogamma0 (1 + nu_rel(0)),
 *   Ogamma0 = (4 sigma_SB / c^3) Tcmb0^4 / rho_crit0,  rho_crit0 = 3 H0^2 / (8 pi G),
 *   nu_rel(z) = 0.22710731766 (Neff/3) [ sum_massive (1 + (0.3173 y/(1+z))^1.83)^(1/1.83) + n_massless ],
 *   y = m_nu c^2 / (k_B T_nu0),  T_nu0 = (4/11)^(1/3) Tcmb0.
 *   tage(z) = (1/H0) int_z^inf dz' / ((1+z') E(z'))          [Gyr]
 *   d_L(z)  = (1+z) (c/H0) int_0^z dz' / E(z')                 [cm]
 * Constants are CODATA 2018 as in astropy 5.
 */
#include "sedflow/cosmo.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_integration.h>
#include <gsl/gsl_interp.h>

#define C_KM_S 299792.458
#define MPC_KM 3.0856775814913673e19
#define MPC_CM 3.0856775814913673e24
#define GYR_S 3.15576e16 /* Julian Gyr */
#define G_CGS 6.67430e-8
#define SIGMA_SB_CGS 5.670374419e-5
#define C_CM_S 2.99792458e10
#define KB_EV_K 8.617333262e-5

static double nu_relative_density(const sf_cosmo *c, double z)
{
    const double prefac = 0.22710731766; /* 7/8 (4/11)^(4/3) */
    const double neff = 3.046, n_massless = 2.0, p = 1.83, k = 0.3173;
    double y = c->nu_y / (1.0 + z);
    double rel_mass = pow(1.0 + pow(k * y, p), 1.0 / p) + n_massless;
    return prefac * (neff / 3.0) * rel_mass;
}

double sf_cosmo_efunc(const sf_cosmo *c, double z)
{
    double zp1 = 1.0 + z;
    double or_ = c->ogamma0 * (1.0 + nu_relative_density(c, z));
    return sqrt(zp1 * zp1 * zp1 * (c->om0 + zp1 * or_) + c->ode0);
}

static double age_integrand(double z, void *p)
{
    return 1.0 / ((1.0 + z) * sf_cosmo_efunc(p, z));
}

static double dcom_integrand(double z, void *p) { return 1.0 / sf_cosmo_efunc(p, z); }

static int integrate(const sf_cosmo *c, double a, double b, int to_inf, double *res)
{
    gsl_integration_workspace *ws = gsl_integration_workspace_alloc(512);
    if (!ws) return -1;
    gsl_function f = {to_inf ? age_integrand : dcom_integrand, (void *)c};
    double err;
    int rc = to_inf ? gsl_integration_qagiu(&f, a, 0, 1e-12, 512, ws, res, &err)
                    : gsl_integration_qag(&f, a, b, 0, 1e-12, 512, GSL_INTEG_GAUSS31, ws, res, &err);
    gsl_integration_workspace_free(ws);
    return rc;
}

double sf_cosmo_tage_gyr_direct(const sf_cosmo *c, double z)
{
    double r = NAN;
    if (integrate(c, z, 0, 1, &r)) return NAN;
    return r / c->h0_per_s / GYR_S;
}

double sf_cosmo_dlum_cm_direct(const sf_cosmo *c, double z)
{
    double r = 0;
    if (z > 0 && integrate(c, 0, z, 0, &r)) return NAN;
    return (1.0 + z) * C_KM_S / (c->h0_per_s * MPC_KM) * r * MPC_CM;
}

void sf_cosmo_free(sf_cosmo *c)
{
    if (!c) return;
    gsl_interp_free(c->tage_spline);
    gsl_interp_free(c->dcom_spline);
    c->tage_spline = c->dcom_spline = NULL;
}

sf_status sf_cosmo_init_planck13(sf_cosmo *c)
{
    const double h0 = 67.77, tcmb0 = 2.7255, m_nu_ev = 0.06;
    c->h0_per_s = h0 / MPC_KM;
    c->om0 = 0.30712;
    double rho_crit = 3.0 * c->h0_per_s * c->h0_per_s / (8.0 * M_PI * G_CGS); /* g/cm^3 */
    double a_b_c2 = 4.0 * SIGMA_SB_CGS / (C_CM_S * C_CM_S * C_CM_S);
    c->ogamma0 = a_b_c2 * pow(tcmb0, 4) / rho_crit;
    double t_nu0 = 0.7137658555036082 * tcmb0; /* (4/11)^(1/3) Tcmb0 */
    c->nu_y = m_nu_ev / (KB_EV_K * t_nu0);
    c->ode0 = 0.0;
    c->ode0 = 1.0 - c->om0 - c->ogamma0 * (1.0 + nu_relative_density(c, 0.0));
    c->tage_spline = c->dcom_spline = NULL;

    /* Tables: age by one integral to infinity at z = 0 minus cumulative
     * integrals; comoving distance cumulatively. */
    const double dz = SF_ZMAX_MODEL / (SF_COSMO_NTAB - 1);
    double age_inf_s;
    if (integrate(c, 0.0, 0, 1, &age_inf_s)) return SF_ERROR(SF_ENOCONV, "age integral failed");
    double cum_age = 0, cum_dc = 0;
    c->z[0] = 0;
    c->tage_gyr[0] = age_inf_s / c->h0_per_s / GYR_S;
    c->dcom_mpc[0] = C_KM_S / (c->h0_per_s * MPC_KM); /* lim d_C/z = c/H0 (E(0) = 1) */
    for (int k = 1; k < SF_COSMO_NTAB; k++) {
        double za = (k - 1) * dz, zb = k * dz, ra, rd;
        gsl_integration_workspace *ws = gsl_integration_workspace_alloc(64);
        if (!ws) return SF_ERROR(SF_ENOMEM, "out of memory");
        gsl_function fa = {age_integrand, c}, fd = {dcom_integrand, c};
        double err;
        int rc = gsl_integration_qag(&fa, za, zb, 0, 1e-13, 64, GSL_INTEG_GAUSS21, ws, &ra, &err);
        rc |= gsl_integration_qag(&fd, za, zb, 0, 1e-13, 64, GSL_INTEG_GAUSS21, ws, &rd, &err);
        gsl_integration_workspace_free(ws);
        if (rc) return SF_ERROR(SF_ENOCONV, "distance integral failed at z = %g", zb);
        cum_age += ra;
        cum_dc += rd;
        c->z[k] = zb;
        c->tage_gyr[k] = (age_inf_s - cum_age) / c->h0_per_s / GYR_S;
        c->dcom_mpc[k] = C_KM_S / (c->h0_per_s * MPC_KM) * cum_dc / zb; /* d_C / z */
    }
    c->tage_spline = gsl_interp_alloc(gsl_interp_cspline, SF_COSMO_NTAB);
    c->dcom_spline = gsl_interp_alloc(gsl_interp_cspline, SF_COSMO_NTAB);
    if (!c->tage_spline || !c->dcom_spline) {
        sf_cosmo_free(c);
        return SF_ERROR(SF_ENOMEM, "out of memory");
    }
    gsl_interp_init(c->tage_spline, c->z, c->tage_gyr, SF_COSMO_NTAB);
    gsl_interp_init(c->dcom_spline, c->z, c->dcom_mpc, SF_COSMO_NTAB);
    return SF_OK;
}

static sf_status check_z(double z)
{
    if (!(z > 0.0 && z <= SF_ZMAX_MODEL))
        return SF_ERROR(SF_EDOMAIN, "redshift z = %g outside (0, %g]: the emulator is trained for tage(z) "
                        "with 0 <= z <= %g, and z <= 0 has no luminosity distance", z, SF_ZMAX_MODEL, SF_ZMAX_MODEL);
    return SF_OK;
}

sf_status sf_cosmo_tage_gyr(const sf_cosmo *c, double z, double *tage_gyr)
{
    sf_status st = check_z(z);
    if (st) return st;
    *tage_gyr = gsl_interp_eval(c->tage_spline, c->z, c->tage_gyr, z, NULL);
    return SF_OK;
}

sf_status sf_cosmo_dlum_cm(const sf_cosmo *c, double z, double *dlum_cm)
{
    sf_status st = check_z(z);
    if (st) return st;
    *dlum_cm = (1.0 + z) * z * gsl_interp_eval(c->dcom_spline, c->z, c->dcom_mpc, z, NULL) * MPC_CM;
    return SF_OK;
}
