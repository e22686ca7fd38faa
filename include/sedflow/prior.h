/*
 * sedflow/prior.h — the prior and the 11-dim sampling space (MODEL.md s1).
 *
 * The flow and the MCMC work in the sampling space
 *   u = (logmstar, u1, u2, u3, fburst, tburst, log10 gamma1, log10 gamma2,
 *        tau_bc, tau_ism, n_dust),
 * a box [sf_prior_lower, sf_prior_upper].  The 12 physical parameters theta
 * (sedflow/model.h) follow from u by the warped-manifold (stick-breaking)
 * transform of Betancourt (2013):
 *   beta1 = 1-u1, beta2 = u1(1-u2), beta3 = u1 u2 (1-u3), beta4 = u1 u2 u3,
 * and gamma = 10^(log10 gamma).
 *
 * Two priors on u:
 *  - SF_PRIOR_SEDFLOW (default): uniform in the whole box, as SEDflow and
 *    PROVABGS use it (beta1 is then uniform, mean 1/2: not a flat Dirichlet);
 *  - SF_PRIOR_DIRICHLET: the true flat Dirichlet(1,1,1,1) on the betas,
 *    i.e. u_i ~ Beta(4-i, 1) for i = 1..3, the rest uniform in the box.
 */
#ifndef SEDFLOW_PRIOR_H
#define SEDFLOW_PRIOR_H

#include <gsl/gsl_rng.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SF_NU = 11 };

typedef enum { SF_PRIOR_SEDFLOW = 0, SF_PRIOR_DIRICHLET = 1 } sf_prior_kind;

/* Box bounds of the sampling space, in the order of u above. */
extern const double sf_prior_lower[SF_NU];
extern const double sf_prior_upper[SF_NU];
/* Names ("logmstar", "u1", ..., "log10_gamma1", ...) and units. */
extern const char *const sf_u_names[SF_NU];
extern const char *const sf_u_units[SF_NU];

/* Name <-> kind ("sedflow", "dirichlet").  Unknown name: SF_EINVAL. */
sf_status sf_prior_parse(const char *name, sf_prior_kind *kind);
const char *sf_prior_name(sf_prior_kind kind);

/* One draw u (11) from the prior using r. */
void sf_prior_sample(sf_prior_kind kind, gsl_rng *r, double *u);

/* log prior density of u in the sampling space; -INFINITY outside the box
 * or for non-finite u. */
double sf_prior_logpdf(sf_prior_kind kind, const double *u);

/* 1 if u lies in the closed box, else 0 (NaN: 0). */
int sf_prior_in_box(const double *u);

/* u (11) -> theta (12).  Exact stick-breaking; no checks. */
void sf_u_to_theta(const double *u, double *theta);

/* theta (12) -> u (11): u1 = 1-beta1, u2 = 1 - beta2/u1, u3 = 1 - beta3/(u1 u2)
 * with u1 and u1 u2 clipped below at 1e-8 before dividing (safe at the
 * Dirichlet corners) and the results clamped to [0, 1]; gammas -> log10. */
void sf_theta_to_u(const double *theta, double *u);

/* Just the unit-cube coordinates u1..u3 (3) of betas beta1..beta4 (4), as
 * in sf_theta_to_u. */
void sf_beta_to_unitcube(const double *beta, double *u123);

#ifdef __cplusplus
}
#endif
#endif
