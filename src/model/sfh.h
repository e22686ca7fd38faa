/*
 * model/sfh.h — NMF star-formation and metallicity histories, binned in
 * lookback time, and the derived properties (MODEL.md s5).
 */
#ifndef SEDFLOW_MODEL_SFH_H
#define SEDFLOW_MODEL_SFH_H

#include <stddef.h>

#include <hdf5.h>

#include "sedflow/error.h"

#define SF_NMF_NT 50      /* basis sampling times */
#define SF_NMF_NSFH 4     /* SFH bases */
#define SF_NMF_NZH 2      /* ZH bases */
#define SF_SFH_MAXBINS 43 /* lookback bins (42 edges from the grid + tage) */

/* A basis function sampled at t (ascending, Gyr), as a piecewise-linear
 * function of lookback time extended linearly beyond both ends; cum[k] is
 * its integral from t[0] to t[k] (Gyr). */
typedef struct {
    double y[SF_NMF_NT];
    double cum[SF_NMF_NT];
} sf_basis_fn;

typedef struct {
    double t[SF_NMF_NT];               /* lookback time [Gyr], ascending */
    sf_basis_fn sfh[SF_NMF_NSFH];      /* SFH bases, in PROVABGS order */
    sf_basis_fn zh[SF_NMF_NZH];        /* ZH bases [metallicity Z per unit gamma] */
} sf_nmf_basis;

/* Read group nmf_basis of the model file. */
sf_status sf_nmf_basis_load(hid_t file, sf_nmf_basis *b);

/* Basis value at lookback time x [Gyr] (linear interpolation/extrapolation). */
double sf_basis_eval(const sf_nmf_basis *b, const sf_basis_fn *f, double x);
/* Exact integral of the basis from lo to hi [Gyr * basis unit]. */
double sf_basis_integral(const sf_nmf_basis *b, const sf_basis_fn *f, double lo, double hi);

/* Lookback-time bin edges for a galaxy of age tage [Gyr]: the grid edges
 * below tage, then tage.  edges: SF_SFH_MAXBINS + 1; returns the number of
 * bins. */
int sf_sfh_bin_edges(double tage, double *edges);

/* Metallicity clip(gamma1 ZH1(t) + gamma2 ZH2(t), SF_ZMIN, SF_ZMAX) at t [Gyr]. */
double sf_zh_eval(const sf_nmf_basis *b, double gamma1, double gamma2, double t);

/* The parts of the derived properties that depend only on the galaxy's age
 * tage [Gyr] (hence on z alone): the lookback-time bin edges, the integral
 * of each SFH basis over each bin and the ZH basis values at the bin
 * centres.  Filled by sf_sfh_plan_init; read-only afterwards. */
typedef struct {
    int nb;                                       /* number of bins */
    double tage;                                  /* [Gyr] */
    double edges[SF_SFH_MAXBINS + 1];             /* bin edges [Gyr lookback], nb + 1 used */
    double integral[SF_NMF_NSFH][SF_SFH_MAXBINS]; /* SFH basis i integrated over bin k [Gyr * basis unit] */
    double zh[SF_NMF_NZH][SF_SFH_MAXBINS];        /* ZH basis i at the centre of bin k */
} sf_sfh_plan;

/* Fill plan for a galaxy of age tage [Gyr] from the bases b. */
void sf_sfh_plan_init(const sf_nmf_basis *b, double tage, sf_sfh_plan *plan);

/* Derived properties (MODEL.md s5) of n galaxies of the same age:
 * theta n x 12 (row-major, valid: sf_model_check_theta) ->
 * out n x 3: sfr_1gyr [Msun/yr], z_mw [-], tage_mw [Gyr]. */
void sf_sfh_derived_plan(const sf_sfh_plan *plan, size_t n, const double *theta, double *out);

#endif
