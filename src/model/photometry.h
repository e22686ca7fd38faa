/*
 * model/photometry.h — AB synthetic photometry through the SDSS filters
 * (MODEL.md s4).
 */
#ifndef SEDFLOW_MODEL_PHOTOMETRY_H
#define SEDFLOW_MODEL_PHOTOMETRY_H

#include <hdf5.h>

#include "sedflow/error.h"

typedef struct {
    int n;
    double *wave;  /* (n) Angstrom, ascending */
    double *resp;  /* (n) photon-counting response */
    double *slope; /* (n-1) (resp[j+1]-resp[j]) / (wave[j+1]-wave[j]) per segment */
    double ab_norm; /* int 3631e-23 c / lambda^2 R lambda dlambda [erg/s/cm^2] */
} sf_filter;

/* Read filters/<band> of the model file and compute its AB normalisation. */
sf_status sf_filter_load(hid_t file, const char *band, sf_filter *f);
void sf_filter_free(sf_filter *f);

/* Maggies of the spectrum L(lambda_rest) [Lsun/A] on wave_rest (nw points,
 * ascending) redshifted by zp1 = 1+z, with flux factor
 * k = 3.846e33 / (4 pi d_L^2) / (1+z):  f_lambda(lambda_rest zp1) = k L.
 * Trapezoid over the spectrum's observed grid inside the filter's range,
 * with R interpolated linearly (speclite's default scheme). */
double sf_filter_maggies(const sf_filter *f, const double *wave_rest, const double *lum, int nw,
                         double zp1, double k);

#endif
