/*
 * sedflow/cosmo.h — flat LCDM "Planck13" exactly as astropy defines it
 * (MODEL.md s2): H0 = 67.77 km/s/Mpc, Om0 = 0.30712, Tcmb0 = 2.7255 K,
 * Neff = 3.046, neutrino masses (0, 0, 0.06) eV, photons and neutrinos in
 * E(z) with astropy's fitting formula for massive neutrinos (Komatsu et al.
 * 2011, eq. 26).  Age and luminosity distance are integrated with GSL once
 * into cubic-spline tables on 0 <= z <= 0.6 (interpolation error < 1e-9
 * relative); a query outside (0, 0.6] is an error, never a clamp.
 */
#ifndef SEDFLOW_COSMO_H
#define SEDFLOW_COSMO_H

#include <gsl/gsl_interp.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_ZMAX_MODEL 0.6 /* the emulator was trained for tage(z) with z in [0, 0.6] */
#define SF_COSMO_NTAB 1201

typedef struct {
    double h0_per_s;    /* H0 [1/s] */
    double om0, ode0;   /* matter (no neutrinos), dark energy */
    double ogamma0;     /* photons */
    double nu_y;        /* m_nu c^2 / (k T_nu0) of the massive neutrino */
    double z[SF_COSMO_NTAB];          /* table redshifts, uniform on [0, 0.6] */
    double tage_gyr[SF_COSMO_NTAB];   /* age of the universe [Gyr] at z[k] */
    double dcom_mpc[SF_COSMO_NTAB];   /* comoving distance / z [Mpc] (smooth at z = 0, so the
                                         spline keeps its relative accuracy at tiny z) */
    gsl_interp *tage_spline, *dcom_spline; /* GSL cubic splines */
} sf_cosmo;

/* Fill c with Planck13 and its tables (a few ms).  Errors: SF_ENOCONV if a
 * GSL integral fails (should not happen), SF_ENOMEM.  Release with
 * sf_cosmo_free (which frees the splines, not c itself). */
sf_status sf_cosmo_init_planck13(sf_cosmo *c);
void sf_cosmo_free(sf_cosmo *c);

/* E(z) = H(z)/H0 (any z >= 0). */
double sf_cosmo_efunc(const sf_cosmo *c, double z);

/* Age of the universe at z [Gyr] and luminosity distance [cm], from the
 * tables.  Errors: SF_EDOMAIN for z <= 0, z > 0.6 or NaN. */
sf_status sf_cosmo_tage_gyr(const sf_cosmo *c, double z, double *tage_gyr);
sf_status sf_cosmo_dlum_cm(const sf_cosmo *c, double z, double *dlum_cm);

/* Direct GSL integrals (slow, any z >= 0; for tests). */
double sf_cosmo_tage_gyr_direct(const sf_cosmo *c, double z);
double sf_cosmo_dlum_cm_direct(const sf_cosmo *c, double z);

#ifdef __cplusplus
}
#endif
#endif
