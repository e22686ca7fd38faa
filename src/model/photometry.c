/*
 * Synthetic AB photometry (MODEL.md s4):
 *   maggies = int f_lambda R lambda dlambda / int (3631e-23 c / lambda^2) R lambda dlambda
 * with c = 2.99792458e18 A/s.  With lambda = zp1 lambda_r and f_lambda = k L(lambda_r)
 * the numerator is k zp1^2 int L(lambda_r) R(zp1 lambda_r) lambda_r dlambda_r.
 */
#include "model/photometry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"

void sf_filter_free(sf_filter *f)
{
    if (!f) return;
    free(f->wave);
    free(f->resp);
    free(f->slope);
    memset(f, 0, sizeof *f);
}

sf_status sf_filter_load(hid_t file, const char *band, sf_filter *f)
{
    char name[64];
    size_t n1, n2;
    memset(f, 0, sizeof *f);
    snprintf(name, sizeof name, "filters/%s/wavelength_A", band);
    sf_status st = sf_h5_read_double(file, name, 0, &f->wave, &n1);
    if (st) return st;
    snprintf(name, sizeof name, "filters/%s/response", band);
    if ((st = sf_h5_read_double(file, name, n1, &f->resp, &n2))) {
        sf_filter_free(f);
        return st;
    }
    f->n = (int)n1;
    f->slope = malloc(n1 * sizeof(double));
    if (!f->slope) {
        sf_filter_free(f);
        return SF_ERROR(SF_ENOMEM, "out of memory");
    }
    if (f->n < 2) {
        sf_filter_free(f);
        return SF_ERROR(SF_EFORMAT, "filter %s has fewer than 2 points", band);
    }
    double s = 0;
    for (int i = 0; i < f->n; i++) {
        if (i > 0 && !(f->wave[i] > f->wave[i - 1])) {
            sf_filter_free(f);
            return SF_ERROR(SF_EFORMAT, "filter %s wavelengths are not ascending", band);
        }
        if (i > 0) {
            f->slope[i - 1] = (f->resp[i] - f->resp[i - 1]) / (f->wave[i] - f->wave[i - 1]);
            double a = f->resp[i - 1] / f->wave[i - 1], b = f->resp[i] / f->wave[i];
            s += 0.5 * (a + b) * (f->wave[i] - f->wave[i - 1]);
        }
    }
    f->ab_norm = 3631e-23 * 2.99792458e18 * s;
    return SF_OK;
}

double sf_filter_maggies(const sf_filter *f, const double *wave_rest, const double *lum, int nw,
                         double zp1, double k)
{
    const double lo = f->wave[0] / zp1, hi = f->wave[f->n - 1] / zp1;
    /* first spectrum point inside the filter range (bisection) */
    int a = 0, b = nw;
    while (a < b) {
        int m = (a + b) / 2;
        if (wave_rest[m] < lo) a = m + 1;
        else b = m;
    }
    /* trapezoid sum_i 0.5 (v_i + v_{i-1}) dl_i = sum_i v_i (l_{i+1} - l_{i-1})/2 with
     * half-intervals at the two ends, v_i = L_i R(zp1 l_i) l_i */
    double sum = 0;
    int j = 0;
    for (int i = a; i < nw && wave_rest[i] <= hi; i++) {
        double wo = wave_rest[i] * zp1;
        while (j < f->n - 2 && f->wave[j + 1] < wo) j++;
        double r = f->resp[j] + f->slope[j] * (wo - f->wave[j]);
        double wl = i > a ? wave_rest[i - 1] : wave_rest[i];
        double wr = (i + 1 < nw && wave_rest[i + 1] <= hi) ? wave_rest[i + 1] : wave_rest[i];
        sum += lum[i] * r * wave_rest[i] * (wr - wl);
    }
    return k * zp1 * zp1 * 0.5 * sum / f->ab_norm;
}
