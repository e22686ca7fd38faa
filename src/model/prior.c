/* The SEDflow prior box and the stick-breaking transform (MODEL.md s1). */
#include "sedflow/prior.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>

const double sf_prior_lower[SF_NU] = {7.0, 0, 0, 0, 0, 0.01, -4.346787486224656, -4.346787486224656, 0, 0, -2.0};
const double sf_prior_upper[SF_NU] = {12.5, 1, 1, 1, 1, 13.27, -1.8239087409443189, -1.8239087409443189, 3, 3, 1.0};
/* log10(4.5e-5) = -4.346787486224656, log10(1.5e-2) = -1.8239087409443189 */

const char *const sf_u_names[SF_NU] = {"logmstar", "u1", "u2", "u3", "fburst", "tburst",
                                       "log10_gamma1", "log10_gamma2", "tau_bc", "tau_ism", "n_dust"};
const char *const sf_u_units[SF_NU] = {"log10 Msun", "", "", "", "", "Gyr", "log10", "log10", "", "", ""};

sf_status sf_prior_parse(const char *name, sf_prior_kind *kind)
{
    if (!strcmp(name, "sedflow")) *kind = SF_PRIOR_SEDFLOW;
    else if (!strcmp(name, "dirichlet")) *kind = SF_PRIOR_DIRICHLET;
    else return SF_ERROR(SF_EINVAL, "unknown prior '%s' (expected 'sedflow' or 'dirichlet')", name);
    return SF_OK;
}

const char *sf_prior_name(sf_prior_kind kind) { return kind == SF_PRIOR_DIRICHLET ? "dirichlet" : "sedflow"; }

void sf_prior_sample(sf_prior_kind kind, gsl_rng *r, double *u)
{
    for (int k = 0; k < SF_NU; k++)
        u[k] = sf_prior_lower[k] + (sf_prior_upper[k] - sf_prior_lower[k]) * gsl_rng_uniform(r);
    if (kind == SF_PRIOR_DIRICHLET)
        for (int i = 1; i <= 3; i++) u[i] = gsl_ran_beta(r, 4.0 - i, 1.0);
}

int sf_prior_in_box(const double *u)
{
    for (int k = 0; k < SF_NU; k++)
        if (!(u[k] >= sf_prior_lower[k] && u[k] <= sf_prior_upper[k])) return 0;
    return 1;
}

double sf_prior_logpdf(sf_prior_kind kind, const double *u)
{
    if (!sf_prior_in_box(u)) return -INFINITY;
    double lp = 0;
    for (int k = 0; k < SF_NU; k++) lp -= log(sf_prior_upper[k] - sf_prior_lower[k]);
    if (kind == SF_PRIOR_DIRICHLET) /* Beta(3,1): 3 u^2; Beta(2,1): 2 u; Beta(1,1): 1 */
        lp += log(3.0 * u[1] * u[1]) + log(2.0 * u[2]);
    return lp;
}

void sf_u_to_theta(const double *u, double *theta)
{
    theta[0] = u[0];
    theta[1] = 1.0 - u[1];
    theta[2] = u[1] * (1.0 - u[2]);
    theta[3] = u[1] * u[2] * (1.0 - u[3]);
    theta[4] = u[1] * u[2] * u[3];
    theta[5] = u[4];
    theta[6] = u[5];
    theta[7] = pow(10.0, u[6]);
    theta[8] = pow(10.0, u[7]);
    theta[9] = u[8];
    theta[10] = u[9];
    theta[11] = u[10];
}

static double clamp01(double x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

void sf_beta_to_unitcube(const double *beta, double *u123)
{
    double u1 = clamp01(1.0 - beta[0]);
    double d1 = u1 > 1e-8 ? u1 : 1e-8;
    double u2 = clamp01(1.0 - beta[1] / d1);
    double d2 = u1 * u2 > 1e-8 ? u1 * u2 : 1e-8;
    double u3 = clamp01(1.0 - beta[2] / d2);
    u123[0] = u1;
    u123[1] = u2;
    u123[2] = u3;
}

void sf_theta_to_u(const double *theta, double *u)
{
    u[0] = theta[0];
    sf_beta_to_unitcube(theta + 1, u + 1);
    u[4] = theta[5];
    u[5] = theta[6];
    u[6] = log10(theta[7]);
    u[7] = log10(theta[8]);
    u[8] = theta[9];
    u[9] = theta[10];
    u[10] = theta[11];
}
