/* HDF5 output of SED-posterior MCMC runs (sedflow mcmc --out; layout in
 * docs/VALIDATION.md section 7). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "sedflow/sedpost.h"

static const char *move_name(sf_mcmc_move m)
{
    return m == SF_MCMC_STRETCH ? "stretch" : (m == SF_MCMC_SLICE_GAUSSIAN ? "slice-gaussian" : "slice-differential");
}

sf_status sf_sedpost_summarise(const sf_model *m, const sf_mcmc_chain *c, double z, double *samples14,
                               double summary[SF_SEDPOST_NQ][3])
{
    size_t n = c->nsteps * c->nwalkers;
    if (n == 0) return SF_ERROR(SF_EINVAL, "empty chain");
    double *s = samples14 ? samples14 : malloc(sizeof(double) * n * SF_SEDPOST_NQ);
    if (!s) return SF_ERROR(SF_ENOMEM, "out of memory for %zu samples", n);
    sf_status st = sf_sedpost_quantities(m, n, c->x, z, s);
    static const double q[3] = {0.5, 0.16, 0.84};
    for (int k = 0; !st && k < SF_SEDPOST_NQ; k++) st = sf_sedpost_percentiles(s + k, n, SF_SEDPOST_NQ, 3, q, summary[k]);
    if (!samples14) free(s);
    return st;
}

static sf_status write_galaxy(hid_t f, size_t g, const sf_model *m, const sf_sedpost_galaxy *ga, long long id,
                              const sf_mcmc_chain *c, const sf_sedpost_diag *d, sf_status gst)
{
    char name[64];
    snprintf(name, sizeof name, "galaxy_%zu", g);
    hid_t grp;
    sf_status st = sf_h5_group(f, name, &grp);
    if (st) return st;
    size_t five = SF_NBANDS, nu = SF_NU;
    st = sf_h5_attr_set_long(grp, ".", "id", id);
    if (!st) st = sf_h5_attr_set_double(grp, ".", "z", ga->z);
    if (!st) st = sf_h5_attr_set_long(grp, ".", "status", (long long)gst);
    if (!st) st = sf_h5_attr_set_string(grp, ".", "message", d ? d->warning : "");
    if (!st) st = sf_h5_write_double(grp, "flux_nmgy", 1, &five, ga->flux_nmgy, 0);
    if (!st) st = sf_h5_write_double(grp, "ivar_nmgy2", 1, &five, ga->ivar_nmgy2, 0);
    if (!st && c) {
        size_t n = c->nsteps * c->nwalkers;
        size_t d3[3] = {c->nsteps, c->nwalkers, SF_NU}, d2[2] = {c->nsteps, c->nwalkers};
        st = sf_h5_write_double(grp, "chain", 3, d3, c->x, c->nsteps > 64 ? 64 : c->nsteps);
        if (!st) st = sf_h5_write_double(grp, "logp", 2, d2, c->logp, c->nsteps > 64 ? 64 : c->nsteps);
        double *s = malloc(sizeof(double) * n * SF_SEDPOST_NQ), *der = malloc(sizeof(double) * n * SF_SEDPOST_NDERIVED);
        double summ[SF_SEDPOST_NQ][3];
        if (!st && (!s || !der)) st = SF_ERROR(SF_ENOMEM, "out of memory");
        if (!st) st = sf_sedpost_summarise(m, c, ga->z, s, summ);
        if (!st) {
            for (size_t i = 0; i < n; i++)
                memcpy(der + i * SF_SEDPOST_NDERIVED, s + i * SF_SEDPOST_NQ + SF_NU, sizeof(double) * SF_SEDPOST_NDERIVED);
            size_t dd[3] = {c->nsteps, c->nwalkers, SF_SEDPOST_NDERIVED}, ds[2] = {SF_SEDPOST_NQ, 3};
            st = sf_h5_write_double(grp, "derived", 3, dd, der, c->nsteps > 64 ? 64 : c->nsteps);
            if (!st) st = sf_h5_write_double(grp, "summary", 2, ds, &summ[0][0], 0);
        }
        free(s);
        free(der);
        if (!st && d) {
            st = sf_h5_write_double(grp, "tau", 1, &nu, d->tau, 0);
            if (!st) st = sf_h5_write_double(grp, "rhat", 1, &nu, d->rhat, 0);
            if (!st) st = sf_h5_write_double(grp, "best_u", 1, &nu, d->best_u, 0);
            if (!st) st = sf_h5_write_double(grp, "best_flux_nmgy", 1, &five, d->best_flux, 0);
            if (!st) st = sf_h5_attr_set_double(grp, ".", "best_chi2", d->best_chi2);
            if (!st) st = sf_h5_attr_set_double(grp, ".", "best_logp", d->best_logp);
            if (!st) st = sf_h5_attr_set_long(grp, ".", "converged", d->converged);
            if (!st) st = sf_h5_attr_set_long(grp, ".", "n_eval", (long long)d->info.neval);
            if (!st) st = sf_h5_attr_set_double(grp, ".", "mu", d->info.mu);
        }
    }
    H5Gclose(grp);
    return st;
}

sf_status sf_sedpost_save(const char *path, const sf_model *m, size_t G, const sf_sedpost_galaxy *gal,
                          const long long *ids, const sf_sedpost_opts *opts, sf_mcmc_chain *const *chains,
                          const sf_sedpost_diag *diag, const sf_status *status)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return SF_ERROR(SF_EINVAL, "path too long");
    hid_t f;
    sf_status st = sf_h5_create(tmp, &f);
    if (st) return st;
    char names[512] = "";
    for (int k = 0; k < SF_SEDPOST_NQ; k++) {
        strcat(names, sf_sedpost_names[k]);
        if (k + 1 < SF_SEDPOST_NQ) strcat(names, ",");
    }
    st = sf_h5_attr_set_string(f, ".", "format", "sedflow-mcmc");
    if (!st) st = sf_h5_attr_set_long(f, ".", "format_version", 1);
    if (!st) st = sf_h5_attr_set_string(f, ".", "quantities", names);
    if (!st) st = sf_h5_attr_set_string(f, ".", "summary_columns", "median,p16,p84");
    if (!st) st = sf_h5_attr_set_string(f, ".", "move", move_name(opts->mcmc.move));
    if (!st) st = sf_h5_attr_set_string(f, ".", "prior", sf_prior_name(opts->prior));
    if (!st) st = sf_h5_attr_set_long(f, ".", "nwalkers", (long long)opts->mcmc.nwalkers);
    if (!st) st = sf_h5_attr_set_long(f, ".", "nburn", (long long)opts->mcmc.nburn);
    if (!st) st = sf_h5_attr_set_long(f, ".", "niter", (long long)opts->mcmc.niter);
    if (!st) st = sf_h5_attr_set_long(f, ".", "thin", (long long)opts->mcmc.thin);
    if (!st) st = sf_h5_attr_set_long(f, ".", "n_start", (long long)opts->n_start);
    if (!st) st = sf_h5_attr_set_long(f, ".", "n_galaxies", (long long)G);
    if (!st) st = sf_h5_attr_set_string(f, ".", "code_version", SEDFLOW_VERSION);
    for (size_t g = 0; !st && g < G; g++)
        st = write_galaxy(f, g, m, &gal[g], ids ? ids[g] : (long long)g, chains[g], diag ? &diag[g] : NULL, status[g]);
    if (H5Fclose(f) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close '%s'", tmp);
    if (!st && rename(tmp, path) != 0) st = SF_ERROR(SF_EIO, "cannot rename %s to %s", tmp, path);
    if (st) remove(tmp);
    return st;
}
