/*
 * tests/test_flow_synth.h — synthetic conditional Gaussian training sets
 * theta | x ~ N(A x + b, L L^T), x ~ U(0, 1)^C, written in the simulator's
 * training-file layout (theta_u n x D, x n x C, /prior/lower, /prior/upper);
 * a helper that trains whole epochs; and the driver of flow tests that run
 * once per flow family.
 */
#ifndef SEDFLOW_TEST_FLOW_SYNTH_H
#define SEDFLOW_TEST_FLOW_SYNTH_H

#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "io/h5util.h"
#include "sedflow/flow.h"
#include "sedflow/rng.h"
#include "testutil.h"

typedef struct {
    int D, C;
    double A[8][8], b[8], L[8][8]; /* L lower triangular, positive diagonal */
} synth_model;

static inline void synth_init(synth_model *m, int D, int C, uint64_t seed)
{
    gsl_rng *r = sf_rng_alloc(seed);
    m->D = D, m->C = C;
    for (int i = 0; i < D; i++) {
        for (int j = 0; j < C; j++) m->A[i][j] = 2 * gsl_rng_uniform(r) - 1;
        m->b[i] = gsl_rng_uniform(r);
        for (int j = 0; j < D; j++) m->L[i][j] = j < i ? 0.3 * (2 * gsl_rng_uniform(r) - 1) : 0;
        m->L[i][i] = 0.2 + 0.5 * gsl_rng_uniform(r);
    }
    gsl_rng_free(r);
}

/* Draw n rows (theta n x D, x n x C) from stream `stream` of seed. */
static inline void synth_draw(const synth_model *m, size_t n, uint64_t seed, uint64_t stream, double *theta, double *x)
{
    gsl_rng *r = sf_rng_alloc(seed);
    sf_rng_set_stream(r, seed, stream);
    for (size_t k = 0; k < n; k++) {
        double e[8];
        for (int j = 0; j < m->C; j++) x[k * m->C + j] = gsl_rng_uniform(r);
        for (int i = 0; i < m->D; i++) e[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
        for (int i = 0; i < m->D; i++) {
            double v = m->b[i];
            for (int j = 0; j < m->C; j++) v += m->A[i][j] * x[k * m->C + j];
            for (int j = 0; j <= i; j++) v += m->L[i][j] * e[j];
            theta[k * m->D + i] = v;
        }
    }
    gsl_rng_free(r);
}

/* True log p(theta | x). */
static inline double synth_logp(const synth_model *m, const double *theta, const double *x)
{
    double rr[8], lp = -0.5 * m->D * log(2 * M_PI);
    for (int i = 0; i < m->D; i++) {
        double v = theta[i] - m->b[i];
        for (int j = 0; j < m->C; j++) v -= m->A[i][j] * x[j];
        for (int j = 0; j < i; j++) v -= m->L[i][j] * rr[j];
        rr[i] = v / m->L[i][i];
        lp -= 0.5 * rr[i] * rr[i] + log(m->L[i][i]);
    }
    return lp;
}

/* Write a training file; returns 0 on success. */
/* synth_write with the prior box [-box, box] and, when out > 0, theta_0 of
 * the first `out` rows set to 0.5 (20 + box): outside the usual box. */
static inline int synth_write_box(const char *path, const synth_model *m, size_t n, uint64_t seed, double box,
                                  size_t out)
{
    double *th = malloc(sizeof(double) * n * m->D), *x = malloc(sizeof(double) * n * m->C);
    synth_draw(m, n, seed, 0, th, x);
    for (size_t r = 0; r < out && r < n; r++) th[r * m->D] = 0.5 * (20 + box);
    double lo[8], hi[8];
    for (int i = 0; i < m->D; i++) lo[i] = -box, hi[i] = box;
    hid_t f;
    int bad = sf_h5_create(path, &f) != SF_OK;
    if (!bad) {
        size_t d1[2] = {n, (size_t)m->D}, d2[2] = {n, (size_t)m->C}, dp = (size_t)m->D;
        hid_t g;
        bad |= sf_h5_write_double(f, "theta_u", 2, d1, th, 0) != SF_OK;
        bad |= sf_h5_write_double(f, "x", 2, d2, x, 0) != SF_OK;
        bad |= sf_h5_group(f, "prior", &g) != SF_OK;
        H5Gclose(g);
        bad |= sf_h5_write_double(f, "prior/lower", 1, &dp, lo, 0) != SF_OK;
        bad |= sf_h5_write_double(f, "prior/upper", 1, &dp, hi, 0) != SF_OK;
        bad |= sf_h5_attr_set_string(f, "theta_u", "names", "a,b,c,d,e,f,g,h") != SF_OK;
        bad |= sf_h5_attr_set_string(f, "theta_u", "units", "kpc,Gyr,dex,mag,-,-,-,-") != SF_OK;
        H5Fclose(f);
    }
    free(th);
    free(x);
    return bad;
}

static inline int synth_write(const char *path, const synth_model *m, size_t n, uint64_t seed)
{
    return synth_write_box(path, m, n, seed, 20, 0);
}

/* Run n whole epochs of trainer t (steps until the epoch ends, then
 * sf_flow_trainer_epoch_end); the first error is returned. */
static inline sf_status synth_run_epochs(sf_flow_trainer *t, int n)
{
    for (int e = 0; e < n; e++) {
        int more = 1, stop;
        sf_status st;
        while (more)
            if ((st = sf_flow_trainer_step(t, &more))) return st;
        if ((st = sf_flow_trainer_epoch_end(t, NULL, &stop))) return st;
    }
    return SF_OK;
}

/* main() of a test run once per flow family: the program's argument "maf"
 * or "nsf" picks one (tests/CMakeLists.txt registers <suite>_maf and
 * <suite>_nsf with CTest), no argument runs both.  Calls check(family) for
 * each, then prints the summary line and returns the exit status; an
 * unknown family is a failed check. */
static inline int flow_test_each_family(const char *suite, int argc, char **argv, void (*check)(sf_flow_family))
{
    static const struct {
        const char *name;
        sf_flow_family family;
    } fam[] = {{"maf", SF_FLOW_MAF}, {"nsf", SF_FLOW_NSF}};
    int ran = 0;
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++)
        if (argc < 2 || !strcmp(argv[1], fam[i].name)) {
            printf("# flow family %s\n", fam[i].name);
            check(fam[i].family);
            ran++;
        }
    if (!ran) CHECK(0, "the flow family asked for ('%s') is maf or nsf", argv[1]);
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", suite, argc < 2 ? "" : " ", argc < 2 ? "" : argv[1]);
    return tu_finish(name);
}

#endif
