/*
 * The posterior catalog written by sedflow infer (layout: docs/INFER.md):
 * fixed-size HDF5 datasets for all galaxies created up front (samples
 * NaN-filled, float32, chunked by galaxy, shuffle + deflate), filled block
 * by block with a progress attribute `next_galaxy` so an interrupted run can
 * be resumed; the results of the MCMC fallback written into the rows it ran
 * on; a report of a finished file.  The FITS summary table: catalog_fits.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "core/threads.h"

#include "io/catalog_out_chunk.h"
#include "io/catalog_out_priv.h"
#include "io/h5util.h"
#include "sedflow/infer.h"

#define SAMPLE_CHUNK_ROWS 1 /* one galaxy per chunk: rows are written as finished chunks */
#define DIRECT_GROUP 16     /* galaxies encoded per parallel round of the writer */
#define ROW_CHUNK 1024

struct sf_infer_file {
    hid_t file;
    size_t n, n_samples, next;
    hid_t str_t, bool_t;
    int mcmc_on;                  /* made with the MCMC fallback */
    long long mcmc_n, mcmc_next;  /* galaxies listed for it (-1: not yet), done */
    int direct_level;             /* deflate level of samples/<q> written as finished chunks; 0: H5Dwrite */
    int nthreads;                 /* threads encoding them (the run's --threads; 0: all) */
};

static const char *FLAG_BITS_TEXT =
    "0 non-finite value; 1 flux <= 0; 2 ivar <= 0; 3 missing value; 4 not a number; 5 redshift missing or "
    "non-finite; 6 id missing or not an integer; 8 redshift outside the trained range; 9 sigma > mu_sigma(m) + 3 "
    "sigma_sigma(m) in some band; 10 colour bluer than the training set's 0.1th percentile; 11 acceptance below "
    "min_acceptance (leakage: identity-map flow, draws inside the prior box; logit-map flow, draws inside the "
    "trained range); 12 fewer samples than requested (proposal budget spent); "
    "13 the flow was not sampled; 14 samples from the MCMC fallback; 15 MCMC chain not converged (< 50 tau or "
    "R-hat >= 1.05); 16 MCMC fallback failed (flow samples kept)";

static const char *move_name(sf_mcmc_move m)
{
    return m == SF_MCMC_STRETCH ? "stretch" : m == SF_MCMC_SLICE_GAUSSIAN ? "slice-gaussian" : "slice-differential";
}

hid_t sf_infer_h5_bool_type(void)
{
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
    signed char v = 0;
    H5Tenum_insert(t, "FALSE", &v);
    v = 1;
    H5Tenum_insert(t, "TRUE", &v);
    return t;
}

hid_t sf_infer_h5_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, SF_INFER_REASON_LEN);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    return t;
}

/* Fixed-size dataset of n rows x width (width 0: rank 1), chunked by
 * chunk_rows, optional deflate, fill value (may be NULL). */
static sf_status create_ds(hid_t loc, const char *name, hid_t type, size_t n, size_t width, size_t chunk_rows,
                           int deflate, const void *fill, const char *units, const char *descr)
{
    int rank = width ? 2 : 1;
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)width}, chunk[2] = {(hsize_t)chunk_rows, (hsize_t)width};
    if (chunk[0] > dims[0]) chunk[0] = dims[0];
    if (chunk[0] < 1) chunk[0] = 1;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (deflate > 0) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    if (fill) H5Pset_fill_value(dcpl, type, fill);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_IFSET);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (d < 0) return SF_ERROR(SF_EIO, "cannot create dataset '%s'", name);
    H5Dclose(d);
    sf_status st = sf_h5_attr_set_string(loc, name, "units", units ? units : "");
    if (!st) st = sf_h5_attr_set_string(loc, name, "description", descr ? descr : "");
    return st;
}

/* Write rows [r0, r0 + nr) of a dataset from memory (memtype). */
static sf_status write_rows(hid_t loc, const char *name, hid_t memtype, size_t r0, size_t nr, const void *data)
{
    if (nr == 0) return SF_OK;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return SF_ERROR(SF_EIO, "cannot open dataset '%s'", name);
    hid_t fs = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)nr, rank > 1 ? dims[1] : 1};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, data);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    if (e < 0) return SF_ERROR(SF_EIO, "cannot write '%s' rows %zu..%zu (disk full?)", name, r0, r0 + nr - 1);
    return SF_OK;
}

sf_status sf_infer_h5_read_all(hid_t loc, const char *name, hid_t memtype, void *data)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return SF_ERROR(SF_EFORMAT, "dataset '%s' missing", name);
    herr_t e = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    return e < 0 ? SF_ERROR(SF_EFORMAT, "cannot read dataset '%s'", name) : SF_OK;
}

static void file_free(sf_infer_file *f)
{
    if (!f) return;
    if (f->str_t >= 0) H5Tclose(f->str_t);
    if (f->bool_t >= 0) H5Tclose(f->bool_t);
    if (f->file >= 0) H5Fclose(f->file);
    free(f);
}

static sf_infer_file *file_new(void)
{
    sf_infer_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->file = -1;
    f->mcmc_n = -1;
    f->str_t = sf_infer_h5_str_type();
    f->bool_t = sf_infer_h5_bool_type();
    return f;
}

/* How the sample rows of f will be written: as finished chunks on the run's
 * threads when the datasets allow it (sf_chunk_f32_direct_level). */
static void direct_setup(sf_infer_file *f, const sf_infer *p)
{
    f->nthreads = sf_infer_get_options(p)->nthreads;
    f->direct_level = 0;
    hid_t d = H5Dopen2(f->file, "samples/logmstar", H5P_DEFAULT);
    if (d < 0) return;
    f->direct_level = sf_chunk_f32_direct_level(d);
    H5Dclose(d);
}

#define TRY(x)                     \
    do {                           \
        if ((st = (x))) goto done; \
    } while (0)

sf_status sf_infer_file_create(const char *path, const sf_infer *p, const sf_catalog *cat, const sf_infer_input *in,
                               const sf_infer_file_info *info, sf_infer_file **out)
{
    *out = NULL;
    const sf_infer_options *o = sf_infer_get_options(p);
    const sf_infer_support *s = sf_infer_get_support(p);
    const size_t n = in->n, N = o->n_samples, NB = SF_CATALOG_NBANDS;
    if (n < 1) return SF_ERROR(SF_EINVAL, "no galaxies to write");
    sf_infer_file *f = file_new();
    if (!f) return SF_ERROR(SF_ENOMEM, "out of memory");
    f->n = n;
    f->n_samples = N;
    sf_status st = sf_h5_create(path, &f->file);
    double *col = malloc(n * sizeof(double));
    long long *ll = malloc(n * sizeof(long long));
    if (st) goto done;
    if (!col || !ll) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    hid_t h = f->file, g;
    const double nan = NAN;
    const long long zero = 0;
    const uint32_t notyet = SF_INFER_NOT_SAMPLED;
    const signed char no = 0;
    /* root attributes */
    TRY(sf_h5_attr_set_string(h, ".", "format", "sedflow-posteriors"));
    TRY(sf_h5_attr_set_long(h, ".", "format_version", SF_INFER_FORMAT_VERSION));
    TRY(sf_h5_attr_set_string(h, ".", "code_version", "sedflow " SEDFLOW_VERSION));
    TRY(sf_h5_attr_set_long(h, ".", "n_galaxies", (long long)n));
    TRY(sf_h5_attr_set_long(h, ".", "n_samples", (long long)N));
    TRY(sf_h5_attr_set_long(h, ".", "seed", (long long)o->seed));
    TRY(sf_h5_attr_set_string(h, ".", "seeds", "galaxy i (row) samples from stream 0 of sf_mix64(seed ^ sf_mix64(i + 1))"));
    TRY(sf_h5_attr_set_long(h, ".", "max_proposals", (long long)o->max_proposals));
    TRY(sf_h5_attr_set_double(h, ".", "min_acceptance", o->min_acceptance));
    TRY(sf_h5_attr_set_long(h, ".", "skip_flagged", o->skip_flagged));
    TRY(sf_h5_attr_set_double(h, ".", "sigma_nsd", o->sigma_nsd));
    TRY(sf_h5_attr_set_string(h, ".", "model", info && info->model_path ? info->model_path : ""));
    {
        char hx[32];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)sf_infer_model_hash(p));
        TRY(sf_h5_attr_set_string(h, ".", "model_hash", hx));
    }
    TRY(sf_h5_attr_set_string(h, ".", "catalog", info && info->catalog_paths ? info->catalog_paths : ""));
    TRY(sf_h5_attr_set_string(h, ".", "catalog_format", info && info->catalog_format ? info->catalog_format : ""));
    TRY(sf_h5_attr_set_string(h, ".", "noise_model", info && info->noise_path ? info->noise_path : ""));
    TRY(sf_h5_attr_set_string(h, ".", "model_data", info && info->data_path ? info->data_path : ""));
    TRY(sf_h5_attr_set_long(h, ".", "catalog_n_read", (long long)cat->n_read));
    TRY(sf_h5_attr_set_long(h, ".", "catalog_n_duplicates", (long long)cat->n_duplicates));
    TRY(sf_h5_attr_set_long(h, ".", "block", (long long)(info && info->block ? info->block : 0)));
    TRY(sf_h5_attr_set_double(h, ".", "support_z_min", s->z_min));
    TRY(sf_h5_attr_set_double(h, ".", "support_z_max", s->z_max));
    TRY(sf_h5_attr_set_long(h, ".", "support_has_colour", s->has_colour));
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%.4f,%.4f,%.4f,%.4f", s->colour_min[0], s->colour_min[1], s->colour_min[2],
                 s->colour_min[3]);
        TRY(sf_h5_attr_set_string(h, ".", "support_colour_min", s->has_colour ? buf : ""));
    }
    TRY(sf_h5_attr_set_double(h, ".", "support_colour_quantile", s->colour_quantile));
    TRY(sf_h5_attr_set_string(h, ".", "support_source", s->source));
    TRY(sf_h5_attr_set_string(h, ".", "flag_bits", FLAG_BITS_TEXT));
    TRY(sf_h5_attr_set_long(h, ".", "next_galaxy", 0));
    TRY(sf_h5_attr_set_long(h, ".", "complete", 0));
    TRY(sf_h5_attr_set_double(h, ".", "seconds", 0));
    {
        const sf_infer_mcmc_options *mo = info ? info->mcmc : NULL;
        const sf_sedpost_opts *so = mo ? &mo->sampler : NULL;
        f->mcmc_on = mo != NULL;
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_fallback", mo != NULL));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_walkers", so ? (long long)so->mcmc.nwalkers : 0));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_iterations", so ? (long long)(so->mcmc.nburn + so->mcmc.niter) : 0));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_burn", so ? (long long)so->mcmc.nburn : 0));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_thin", so ? (long long)so->mcmc.thin : 0));
        TRY(sf_h5_attr_set_string(h, ".", "mcmc_move", so ? move_name(so->mcmc.move) : ""));
        TRY(sf_h5_attr_set_string(h, ".", "mcmc_prior", so ? sf_prior_name(so->prior) : ""));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_n_start", so ? (long long)so->n_start : 0));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_pool", mo ? (long long)mo->pool : 0));
        TRY(sf_h5_attr_set_string(h, ".", "mcmc_seeds",
                                  "galaxy i's sampler seed: sf_mix64(sf_mix64(seed ^ sf_mix64(i + 1)) ^ 0x4D434D4346414C4C); "
                                  "groups of mcmc_pool listed galaxies pooled in row order"));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_n", -1));
        TRY(sf_h5_attr_set_long(h, ".", "mcmc_next", 0));
        TRY(sf_h5_attr_set_double(h, ".", "mcmc_seconds", 0));
    }
    /* per-galaxy inputs */
    TRY(create_ds(h, "id", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, NULL, "", "galaxy identifier (NSAID, id column or row number)"));
    TRY(write_rows(h, "id", H5T_NATIVE_LLONG, 0, n, cat->id));
    for (size_t i = 0; i < n; i++) ll[i] = (long long)i;
    TRY(create_ds(h, "row", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, NULL, "",
                  "0-based row in the input catalog after duplicate removal (the random stream's index)"));
    TRY(write_rows(h, "row", H5T_NATIVE_LLONG, 0, n, ll));
    TRY(create_ds(h, "z", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, NULL, "", "redshift"));
    TRY(write_rows(h, "z", H5T_NATIVE_DOUBLE, 0, n, cat->z));
    for (int b = 0; b < (int)NB; b++) {
        char nm[32], ds[160];
        for (int k = 0; k < 2; k++) {
            for (size_t i = 0; i < n; i++) col[i] = in->x[i * 11 + (size_t)k * NB + (size_t)b];
            snprintf(nm, sizeof nm, "%s_%c", k ? "sigma" : "mag", sf_catalog_band_names[b]);
            snprintf(ds, sizeof ds, k ? "%c magnitude uncertainty (2.5/ln10)/(f sqrt(ivar)) (NaN where undefined)"
                                      : "%c AB magnitude 22.5 - 2.5 log10(f / nmgy) (NaN where undefined)",
                     sf_catalog_band_names[b]);
            TRY(create_ds(h, nm, H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, NULL, k ? "mag" : "AB mag", ds));
            TRY(write_rows(h, nm, H5T_NATIVE_DOUBLE, 0, n, col));
        }
    }
    TRY(create_ds(h, "flux_nmgy", H5T_IEEE_F64LE, n, NB, ROW_CHUNK, 4, NULL, "nanomaggies", "ugriz flux as read"));
    TRY(write_rows(h, "flux_nmgy", H5T_NATIVE_DOUBLE, 0, n, cat->flux_nmgy));
    TRY(create_ds(h, "ivar_nmgy2", H5T_IEEE_F64LE, n, NB, ROW_CHUNK, 4, NULL, "nmgy^-2", "ugriz flux inverse variance as read"));
    TRY(write_rows(h, "ivar_nmgy2", H5T_NATIVE_DOUBLE, 0, n, cat->ivar_nmgy2));
    /* results, filled block by block */
    TRY(create_ds(h, "flags", H5T_STD_U32LE, n, 0, ROW_CHUNK, 4, &notyet, "",
                  "flag bits (see the root attribute flag_bits); 0 = trusted; galaxies >= next_galaxy are not processed yet"));
    TRY(create_ds(h, "reason", f->str_t, n, 0, ROW_CHUNK, 4, NULL, "", "readable reasons for the flags, 'ok' when none"));
    TRY(create_ds(h, "sedflow", f->bool_t, n, 0, ROW_CHUNK, 4, &no, "",
                  "True when the ANPE posterior is trusted (no flag set)"));
    TRY(create_ds(h, "acceptance", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, &nan, "",
                  "fraction of flow draws inside the prior box (NaN: not sampled)"));
    TRY(create_ds(h, "n_accepted", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, &zero, "", "samples stored (n_samples unless flagged)"));
    /* the MCMC fallback (filled only for the galaxies it ran on) */
    TRY(create_ds(h, "mcmc", f->bool_t, n, 0, ROW_CHUNK, 4, &no, "",
                  "True when the samples come from the MCMC fallback (--mcmc-fallback), not the flow (flag bit 14)"));
    TRY(create_ds(h, "mcmc_converged", f->bool_t, n, 0, ROW_CHUNK, 4, &no, "",
                  "the MCMC chain passed the convergence test: >= 50 autocorrelation times kept and split-R-hat < 1.05"));
    TRY(create_ds(h, "mcmc_rhat_max", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, &nan, "",
                  "largest split-R-hat of the 11 sampling-space parameters of the MCMC chain (NaN: no MCMC)"));
    TRY(create_ds(h, "mcmc_tau_max", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, &nan, "iterations",
                  "largest integrated autocorrelation time of the MCMC chain (NaN: no MCMC)"));
    TRY(create_ds(h, "mcmc_evals_per_step", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, &nan, "",
                  "forward-model evaluations per walker and iteration, burn-in included (NaN: no MCMC)"));
    TRY(create_ds(h, "mcmc_n_eval", H5T_STD_I64LE, n, 0, ROW_CHUNK, 4, &zero, "",
                  "forward-model evaluations of the MCMC sampler (0: no MCMC)"));
    TRY(create_ds(h, "mcmc_best_chi2", H5T_IEEE_F64LE, n, 0, ROW_CHUNK, 4, &nan, "",
                  "chi2 over the 5 bands of the kept MCMC sample of highest posterior (NaN: no MCMC)"));
    TRY(sf_h5_group(h, "samples", &g));
    H5Gclose(g);
    TRY(sf_h5_group(h, "summary", &g));
    H5Gclose(g);
    {
        const float nanf_ = NAN;
        int lvl = info ? info->compression : 4;
        for (int q = 0; q < SF_INFER_NQ; q++) {
            char nm[64], ds[256];
            snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
            snprintf(ds, sizeof ds, "%s: posterior samples (n_galaxies x n_samples; NaN beyond n_accepted)",
                     sf_infer_q_descriptions[q]);
            TRY(create_ds(h, nm, H5T_IEEE_F32LE, n, N, SAMPLE_CHUNK_ROWS, lvl, &nanf_, sf_infer_q_units[q], ds));
            snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
            snprintf(ds, sizeof ds, "%s: 16th, 50th (median), 84th percentile of the samples", sf_infer_q_descriptions[q]);
            TRY(create_ds(h, nm, H5T_IEEE_F64LE, n, 3, ROW_CHUNK, 4, &nan, sf_infer_q_units[q], ds));
            TRY(sf_h5_attr_set_string(h, nm, "columns", "p16,p50,p84"));
        }
        if (H5Lcreate_soft("/samples/logmstar", h, "samples/log_mstar", H5P_DEFAULT, H5P_DEFAULT) < 0 ||
            H5Lcreate_soft("/summary/logmstar", h, "summary/log_mstar", H5P_DEFAULT, H5P_DEFAULT) < 0) {
            st = SF_ERROR(SF_EIO, "cannot create the log_mstar links");
            goto done;
        }
    }
    if (H5Fflush(h, H5F_SCOPE_GLOBAL) < 0) st = SF_ERROR(SF_EIO, "cannot flush '%s'", path);
    if (!st) direct_setup(f, p);
done:
    free(col);
    free(ll);
    if (st) {
        file_free(f);
        return st;
    }
    *out = f;
    return SF_OK;
}

/* The MCMC fallback of a partial file against this run's (NULL = off). */
static sf_status check_mcmc(hid_t h, const char *path, const sf_infer_mcmc_options *mo, sf_infer_file *f)
{
    long long on = 0, v[6] = {0}, mn = -1, mnext = 0;
    char mv[64] = "", pr[64] = "";
    sf_status st = sf_h5_attr_get_long(h, ".", "mcmc_fallback", &on);
    if (st) return st;
    if ((on != 0) != (mo != NULL))
        return SF_ERROR(SF_EINVAL, "--resume: %s was run %s --mcmc-fallback, this run %s", path, on ? "with" : "without",
                        mo ? "with" : "without");
    f->mcmc_on = on != 0;
    if (!mo) return SF_OK;
    static const char *names[6] = {"mcmc_walkers", "mcmc_iterations", "mcmc_burn", "mcmc_thin", "mcmc_n_start", "mcmc_pool"};
    const sf_sedpost_opts *so = &mo->sampler;
    const long long want[6] = {(long long)so->mcmc.nwalkers, (long long)(so->mcmc.nburn + so->mcmc.niter),
                               (long long)so->mcmc.nburn, (long long)so->mcmc.thin, (long long)so->n_start,
                               (long long)mo->pool};
    for (int k = 0; k < 6; k++) {
        if ((st = sf_h5_attr_get_long(h, ".", names[k], &v[k]))) return st;
        if (v[k] != want[k])
            return SF_ERROR(SF_EINVAL, "--resume: %s has %s = %lld, this run %lld", path, names[k], v[k], want[k]);
    }
    if ((st = sf_h5_attr_get_string(h, ".", "mcmc_move", mv, sizeof mv)) ||
        (st = sf_h5_attr_get_string(h, ".", "mcmc_prior", pr, sizeof pr)) ||
        (st = sf_h5_attr_get_long(h, ".", "mcmc_n", &mn)) || (st = sf_h5_attr_get_long(h, ".", "mcmc_next", &mnext)))
        return st;
    if (strcmp(mv, move_name(so->mcmc.move)) || strcmp(pr, sf_prior_name(so->prior)))
        return SF_ERROR(SF_EINVAL, "--resume: %s has MCMC move %s and prior %s, this run %s and %s", path, mv, pr,
                        move_name(so->mcmc.move), sf_prior_name(so->prior));
    f->mcmc_n = mn;
    f->mcmc_next = mnext;
    return SF_OK;
}

sf_status sf_infer_file_resume(const char *path, const sf_infer *p, const sf_catalog *cat,
                               const sf_infer_mcmc_options *mcmc, size_t *next_galaxy, sf_infer_file **out)
{
    *out = NULL;
    sf_h5_quiet();
    const sf_infer_options *o = sf_infer_get_options(p);
    sf_infer_file *f = file_new();
    if (!f) return SF_ERROR(SF_ENOMEM, "out of memory");
    f->file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f->file < 0) {
        file_free(f);
        return SF_ERROR(SF_EIO, "cannot reopen partial output '%s' for --resume", path);
    }
    hid_t h = f->file;
    long long ver = 0, ng = 0, ns = 0, seed = 0, mp = 0, skip = 0, next = 0;
    double mina = 0, nsd = 0;
    char fmt[64] = "";
    sf_status st = SF_OK;
    long long *ids = NULL;
    if (sf_h5_attr_get_string(h, ".", "format", fmt, sizeof fmt) || strcmp(fmt, "sedflow-posteriors") ||
        sf_h5_attr_get_long(h, ".", "format_version", &ver) || ver != SF_INFER_FORMAT_VERSION) {
        st = SF_ERROR(SF_EFORMAT, "'%s' is not a sedflow posterior file of format version %d", path, SF_INFER_FORMAT_VERSION);
        goto done;
    }
    TRY(sf_h5_attr_get_long(h, ".", "n_galaxies", &ng));
    TRY(sf_h5_attr_get_long(h, ".", "n_samples", &ns));
    TRY(sf_h5_attr_get_long(h, ".", "seed", &seed));
    TRY(sf_h5_attr_get_long(h, ".", "max_proposals", &mp));
    TRY(sf_h5_attr_get_long(h, ".", "skip_flagged", &skip));
    TRY(sf_h5_attr_get_long(h, ".", "next_galaxy", &next));
    TRY(sf_h5_attr_get_double(h, ".", "min_acceptance", &mina));
    TRY(sf_h5_attr_get_double(h, ".", "sigma_nsd", &nsd));
    char hx[32] = "", hy[32];
    TRY(sf_h5_attr_get_string(h, ".", "model_hash", hx, sizeof hx));
    snprintf(hy, sizeof hy, "%016llx", (unsigned long long)sf_infer_model_hash(p));
    if (ng != (long long)cat->n) st = SF_ERROR(SF_EINVAL, "--resume: %s has %lld galaxies, this catalog %zu", path, ng, cat->n);
    else if (ns != (long long)o->n_samples) st = SF_ERROR(SF_EINVAL, "--resume: %s has %lld samples per galaxy, this run %zu", path, ns, o->n_samples);
    else if ((uint64_t)seed != o->seed) st = SF_ERROR(SF_EINVAL, "--resume: %s was run with seed %lld, this run %llu", path, seed, (unsigned long long)o->seed);
    else if (mp != (long long)o->max_proposals) st = SF_ERROR(SF_EINVAL, "--resume: %s has max_proposals %lld, this run %zu", path, mp, o->max_proposals);
    else if (mina != o->min_acceptance) st = SF_ERROR(SF_EINVAL, "--resume: %s has min_acceptance %g, this run %g", path, mina, o->min_acceptance);
    else if ((skip != 0) != (o->skip_flagged != 0)) st = SF_ERROR(SF_EINVAL, "--resume: --skip-flagged differs from the interrupted run");
    else if (nsd != o->sigma_nsd) st = SF_ERROR(SF_EINVAL, "--resume: sigma_nsd differs (%g vs %g)", nsd, o->sigma_nsd);
    else if (strcmp(hx, hy)) st = SF_ERROR(SF_EINVAL, "--resume: %s was made with another model (hash %s, this model %s)", path, hx, hy);
    else if (next < 0 || next > ng) st = SF_ERROR(SF_EFORMAT, "%s: next_galaxy %lld out of range", path, next);
    if (st) goto done;
    TRY(check_mcmc(h, path, mcmc, f));
    ids = malloc((size_t)ng * sizeof(long long));
    if (!ids) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    TRY(sf_infer_h5_read_all(h, "id", H5T_NATIVE_LLONG, ids));
    for (size_t i = 0; i < cat->n; i++)
        if (ids[i] != cat->id[i]) {
            st = SF_ERROR(SF_EINVAL, "--resume: galaxy %zu has id %lld in %s but %lld in this catalog", i, ids[i], path,
                          (long long)cat->id[i]);
            goto done;
        }
    f->n = (size_t)ng;
    f->n_samples = (size_t)ns;
    f->next = (size_t)next;
    direct_setup(f, p);
done:
    free(ids);
    if (st) {
        file_free(f);
        return st;
    }
    *next_galaxy = f->next;
    *out = f;
    return SF_OK;
}

/* samples/<q> rows g0 .. g0 + b->n - 1 as finished chunks: groups of
 * DIRECT_GROUP galaxies x SF_INFER_NQ quantities encoded on f->nthreads
 * threads, then written by this thread in (row, quantity) order, so the file
 * does not depend on the thread count. */
static sf_status write_samples_direct(sf_infer_file *f, size_t g0, const sf_infer_block *b)
{
    const size_t n = b->n, N = f->n_samples, cap = sf_chunk_f32_bound(N), NQ = SF_INFER_NQ;
    sf_status st = SF_OK;
    hid_t d[SF_INFER_NQ];
    size_t len[DIRECT_GROUP * SF_INFER_NQ];
    for (size_t q = 0; q < NQ; q++) d[q] = -1;
    unsigned char *out = malloc(DIRECT_GROUP * NQ * cap);
    if (!out) return SF_ERROR(SF_ENOMEM, "out of memory for %d compressed sample rows", DIRECT_GROUP * SF_INFER_NQ);
    for (size_t q = 0; q < NQ && !st; q++) {
        char nm[64];
        snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
        if ((d[q] = H5Dopen2(f->file, nm, H5P_DEFAULT)) < 0) st = SF_ERROR(SF_EIO, "cannot open dataset '%s'", nm);
    }
    const int nt = sf_nthreads(f->nthreads);
    for (size_t a = 0; a < n && !st; a += DIRECT_GROUP) {
        const size_t m = n - a < DIRECT_GROUP ? n - a : DIRECT_GROUP, ntask = m * NQ;
        sf_status first = SF_OK;
        char msg[512] = "";
#pragma omp parallel num_threads(nt)
        {
            unsigned char *shuf = malloc(4 * N);
#pragma omp for schedule(dynamic, 1)
            for (size_t t = 0; t < ntask; t++) {
                const size_t i = a + t / NQ, q = t % NQ;
                const float *x = b->samples + (q * b->cap + i) * N;
                sf_status s = shuf ? sf_chunk_f32_encode(x, N, f->direct_level, 2 * (size_t)b->n_accepted[i] >= N, shuf,
                                                         out + t * cap, cap, &len[t])
                                   : SF_ERROR(SF_ENOMEM, "out of memory for a shuffle buffer of %zu samples", N);
                if (s) {
#pragma omp critical(sf_infer_chunk_err)
                    if (!first) {
                        first = s;
                        snprintf(msg, sizeof msg, "%s", sf_last_error());
                    }
                }
            }
            free(shuf);
        }
        if (first) {
            st = SF_ERROR(first, "samples of galaxy %zu..%zu: %s", g0 + a, g0 + a + m - 1, msg);
            break;
        }
        for (size_t t = 0; t < ntask && !st; t++) {
            const size_t i = a + t / NQ, q = t % NQ;
            hsize_t off[2] = {(hsize_t)(g0 + i), 0};
            if (H5Dwrite_chunk(d[q], H5P_DEFAULT, 0, off, len[t], out + t * cap) < 0)
                st = SF_ERROR(SF_EIO, "cannot write samples/%s row %zu (disk full?)", sf_infer_q_names[q], g0 + i);
        }
    }
    for (size_t q = 0; q < NQ; q++)
        if (d[q] >= 0) H5Dclose(d[q]);
    free(out);
    return st;
}

sf_status sf_infer_file_write(sf_infer_file *f, size_t g0, const sf_infer_block *b)
{
    const size_t n = b->n, N = f->n_samples;
    if (g0 != f->next || g0 + n > f->n || b->n_samples != N)
        return SF_ERROR(SF_EINVAL, "block at %zu (%zu galaxies) does not continue the file at %zu of %zu", g0, n, f->next, f->n);
    hid_t h = f->file;
    sf_status st = SF_OK;
    signed char *tf = malloc(n ? n : 1);
    if (!tf) return SF_ERROR(SF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) tf[i] = b->flags[i] == 0;
    TRY(write_rows(h, "flags", H5T_NATIVE_UINT32, g0, n, b->flags));
    TRY(write_rows(h, "reason", f->str_t, g0, n, b->reason));
    TRY(write_rows(h, "sedflow", f->bool_t, g0, n, tf));
    TRY(write_rows(h, "acceptance", H5T_NATIVE_DOUBLE, g0, n, b->acceptance));
    TRY(write_rows(h, "n_accepted", H5T_NATIVE_LLONG, g0, n, b->n_accepted));
    if (f->direct_level) TRY(write_samples_direct(f, g0, b));
    else
        for (int q = 0; q < SF_INFER_NQ; q++) {
            char nm[64];
            snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
            TRY(write_rows(h, nm, H5T_NATIVE_FLOAT, g0, n, b->samples + (size_t)q * b->cap * N));
        }
    {
        double *col = malloc((n ? n : 1) * 3 * sizeof(double));
        if (!col) {
            st = SF_ERROR(SF_ENOMEM, "out of memory");
            goto done;
        }
        for (int q = 0; q < SF_INFER_NQ && !st; q++) {
            char nm[64];
            snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
            for (size_t i = 0; i < n; i++)
                for (int k = 0; k < 3; k++) col[i * 3 + k] = b->summary[(i * SF_INFER_NQ + (size_t)q) * 3 + (size_t)k];
            st = write_rows(h, nm, H5T_NATIVE_DOUBLE, g0, n, col);
        }
        free(col);
        if (st) goto done;
    }
    f->next = g0 + n;
    TRY(sf_h5_attr_set_long(h, ".", "next_galaxy", (long long)f->next));
    if (H5Fflush(h, H5F_SCOPE_GLOBAL) < 0) st = SF_ERROR(SF_EIO, "cannot flush the output file");
done:
    free(tf);
    return st;
}

/* Read rows rows[0..n-1] (ascending) of a rank-1 dataset, one hyperslab each. */
static sf_status read_rows_at(hid_t loc, const char *name, hid_t memtype, size_t elsize, const size_t *rows, size_t n,
                              void *data)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return SF_ERROR(SF_EFORMAT, "dataset '%s' missing", name);
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, (hsize_t[]){1}, NULL);
    herr_t e = 0;
    for (size_t k = 0; k < n && e >= 0; k++) {
        hsize_t start = rows[k], count = 1;
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
        e = H5Dread(d, memtype, ms, fs, H5P_DEFAULT, (char *)data + k * elsize);
    }
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    return e < 0 ? SF_ERROR(SF_EFORMAT, "cannot read dataset '%s'", name) : SF_OK;
}

sf_status sf_infer_file_mcmc_list(sf_infer_file *f, const sf_catalog *cat, size_t **rows_out, uint32_t **flags_out,
                                  char **reasons_out, size_t *n_out, size_t *done)
{
    *rows_out = NULL, *flags_out = NULL, *reasons_out = NULL, *n_out = 0, *done = 0;
    if (!f->mcmc_on) return SF_ERROR(SF_EINVAL, "the output file was not made with the MCMC fallback");
    if (f->next != f->n || cat->n != f->n)
        return SF_ERROR(SF_EINVAL, "the MCMC fallback needs the flow pass finished (%zu of %zu galaxies)", f->next, f->n);
    const size_t n = f->n, NB = SF_CATALOG_NBANDS;
    uint32_t *fl = malloc(n * sizeof *fl);
    size_t *rows = malloc(n * sizeof *rows), m = 0;
    sf_status st = SF_OK;
    uint32_t *mfl = NULL;
    char *rs = NULL;
    if (!fl || !rows) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    TRY(sf_infer_h5_read_all(f->file, "flags", H5T_NATIVE_UINT32, fl));
    for (size_t i = 0; i < n; i++)
        if (sf_infer_mcmc_wanted(fl[i], cat->flux_nmgy + i * NB, cat->ivar_nmgy2 + i * NB, cat->z[i])) rows[m++] = i;
    mfl = malloc((m ? m : 1) * sizeof *mfl);
    rs = malloc((m ? m : 1) * SF_INFER_REASON_LEN);
    if (!mfl || !rs) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < m; k++) mfl[k] = fl[rows[k]];
    TRY(read_rows_at(f->file, "reason", f->str_t, SF_INFER_REASON_LEN, rows, m, rs));
    if (f->mcmc_n >= 0 && f->mcmc_n != (long long)m) {
        st = SF_ERROR(SF_EFORMAT, "the file listed %lld galaxies for the MCMC fallback, now %zu", f->mcmc_n, m);
        goto done;
    }
    if (f->mcmc_next < 0 || f->mcmc_next > (long long)m) {
        st = SF_ERROR(SF_EFORMAT, "mcmc_next %lld out of range (%zu listed)", f->mcmc_next, m);
        goto done;
    }
    f->mcmc_n = (long long)m;
    TRY(sf_h5_attr_set_long(f->file, ".", "mcmc_n", f->mcmc_n));
done:
    free(fl);
    if (st) {
        free(rows), free(mfl), free(rs);
        return st;
    }
    *rows_out = rows, *flags_out = mfl, *reasons_out = rs, *n_out = m, *done = (size_t)f->mcmc_next;
    return SF_OK;
}

sf_status sf_infer_file_write_mcmc(sf_infer_file *f, const size_t *rows, size_t n, const sf_infer_block *b,
                                   const sf_infer_mcmc_diag *diag, size_t done_after)
{
    const size_t N = f->n_samples;
    if (!f->mcmc_on || f->mcmc_n < 0 || n != b->n || b->n_samples != N || done_after != (size_t)f->mcmc_next + n ||
        done_after > (size_t)f->mcmc_n)
        return SF_ERROR(SF_EINVAL, "MCMC group of %zu galaxies does not continue the file at %lld of %lld", n,
                        f->mcmc_next, f->mcmc_n);
    hid_t h = f->file;
    sf_status st = SF_OK;
    for (size_t k = 0; k < n && !st; k++) {
        size_t i = rows[k];
        const sf_infer_mcmc_diag *d = &diag[k];
        signed char tf = b->flags[k] == 0, ok = d->status == SF_OK, conv = ok && d->converged;
        if (i >= f->n) return SF_ERROR(SF_EINVAL, "row %zu out of range", i);
        TRY(write_rows(h, "flags", H5T_NATIVE_UINT32, i, 1, &b->flags[k]));
        TRY(write_rows(h, "reason", f->str_t, i, 1, b->reason + k * SF_INFER_REASON_LEN));
        TRY(write_rows(h, "sedflow", f->bool_t, i, 1, &tf));
        TRY(write_rows(h, "mcmc", f->bool_t, i, 1, &ok));
        TRY(write_rows(h, "mcmc_converged", f->bool_t, i, 1, &conv));
        TRY(write_rows(h, "mcmc_rhat_max", H5T_NATIVE_DOUBLE, i, 1, &d->rhat_max));
        TRY(write_rows(h, "mcmc_tau_max", H5T_NATIVE_DOUBLE, i, 1, &d->tau_max));
        TRY(write_rows(h, "mcmc_evals_per_step", H5T_NATIVE_DOUBLE, i, 1, &d->evals_per_step));
        TRY(write_rows(h, "mcmc_n_eval", H5T_NATIVE_LLONG, i, 1, &d->n_eval));
        TRY(write_rows(h, "mcmc_best_chi2", H5T_NATIVE_DOUBLE, i, 1, &d->best_chi2));
        if (!ok) continue; /* the flow's samples, summaries and n_accepted stay */
        TRY(write_rows(h, "n_accepted", H5T_NATIVE_LLONG, i, 1, &b->n_accepted[k]));
        for (int q = 0; q < SF_INFER_NQ; q++) {
            char nm[64];
            snprintf(nm, sizeof nm, "samples/%s", sf_infer_q_names[q]);
            TRY(write_rows(h, nm, H5T_NATIVE_FLOAT, i, 1, b->samples + ((size_t)q * b->cap + k) * N));
            snprintf(nm, sizeof nm, "summary/%s", sf_infer_q_names[q]);
            TRY(write_rows(h, nm, H5T_NATIVE_DOUBLE, i, 1, b->summary + (k * SF_INFER_NQ + (size_t)q) * 3));
        }
    }
    f->mcmc_next = (long long)done_after;
    TRY(sf_h5_attr_set_long(h, ".", "mcmc_next", f->mcmc_next));
    if (H5Fflush(h, H5F_SCOPE_GLOBAL) < 0) st = SF_ERROR(SF_EIO, "cannot flush the output file");
done:
    return st;
}

sf_status sf_infer_file_add_mcmc_seconds(sf_infer_file *f, double seconds)
{
    double prev = 0;
    if (H5Aexists(f->file, "mcmc_seconds") > 0) sf_h5_attr_get_double(f->file, ".", "mcmc_seconds", &prev);
    return sf_h5_attr_set_double(f->file, ".", "mcmc_seconds", prev + seconds);
}

sf_status sf_infer_file_close(sf_infer_file *f, int complete, double seconds)
{
    if (!f) return SF_OK;
    sf_status st = SF_OK;
    double prev = 0;
    if (H5Aexists(f->file, "seconds") > 0) sf_h5_attr_get_double(f->file, ".", "seconds", &prev);
    st = sf_h5_attr_set_double(f->file, ".", "seconds", prev + seconds);
    int all = f->next == f->n && (!f->mcmc_on || (f->mcmc_n >= 0 && f->mcmc_next == f->mcmc_n));
    if (!st && complete) st = sf_h5_attr_set_long(f->file, ".", "complete", all);
    hid_t h = f->file;
    f->file = -1;
    if (H5Fclose(h) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close the output file");
    file_free(f);
    return st;
}

sf_status sf_infer_file_report(const char *path, sf_infer_report *r)
{
    memset(r, 0, sizeof *r);
    hid_t h;
    sf_status st = sf_h5_open_read(path, &h);
    if (st) return st;
    long long ng = 0, ns = 0, next = 0;
    uint32_t *fl = NULL;
    long long *id = NULL;
    double *acc = NULL, *lm = NULL;
    TRY(sf_h5_attr_get_long(h, ".", "n_galaxies", &ng));
    TRY(sf_h5_attr_get_long(h, ".", "n_samples", &ns));
    TRY(sf_h5_attr_get_long(h, ".", "next_galaxy", &next));
    {
        long long on = 0;
        TRY(sf_h5_attr_get_long(h, ".", "mcmc_fallback", &on));
        TRY(sf_h5_attr_get_long(h, ".", "mcmc_n", &r->mcmc_n));
        TRY(sf_h5_attr_get_long(h, ".", "mcmc_next", &r->mcmc_done));
        r->mcmc_fallback = on != 0;
    }
    fl = malloc((size_t)ng * sizeof *fl);
    id = malloc((size_t)ng * sizeof *id);
    acc = malloc((size_t)ng * sizeof *acc);
    lm = malloc((size_t)ng * 3 * sizeof *lm);
    if (!fl || !id || !acc || !lm) {
        st = SF_ERROR(SF_ENOMEM, "out of memory");
        goto done;
    }
    TRY(sf_infer_h5_read_all(h, "flags", H5T_NATIVE_UINT32, fl));
    TRY(sf_infer_h5_read_all(h, "id", H5T_NATIVE_LLONG, id));
    TRY(sf_infer_h5_read_all(h, "acceptance", H5T_NATIVE_DOUBLE, acc));
    TRY(sf_infer_h5_read_all(h, "summary/logmstar", H5T_NATIVE_DOUBLE, lm));
    r->n_galaxies = (size_t)ng;
    r->n_done = (size_t)next;
    r->n_samples = (size_t)ns;
    double sa = 0;
    for (size_t i = 0; i < r->n_done; i++) {
        for (int k = 0; k < 32; k++)
            if (fl[i] & (1u << k)) r->n_flag[k]++;
        if (!(fl[i] & SF_INFER_NOT_SAMPLED)) {
            r->n_sampled++;
            sa += acc[i];
        }
        if (fl[i] & SF_INFER_MCMC) {
            r->n_mcmc++;
            if (!(fl[i] & SF_INFER_MCMC_NOCONV)) r->n_mcmc_converged++;
        }
        if (fl[i] == 0) {
            r->n_trusted++;
            if (r->n_show < 8) {
                r->show_id[r->n_show] = id[i];
                memcpy(r->show_logmstar[r->n_show], lm + i * 3, 3 * sizeof(double));
                r->n_show++;
            }
        }
    }
    /* no trusted galaxy: show the first sampled ones instead */
    for (size_t i = 0; r->n_trusted == 0 && i < r->n_done && r->n_show < 8; i++)
        if (!(fl[i] & SF_INFER_NOT_SAMPLED)) {
            r->show_flagged = 1;
            r->show_id[r->n_show] = id[i];
            memcpy(r->show_logmstar[r->n_show], lm + i * 3, 3 * sizeof(double));
            r->n_show++;
        }
    r->mean_acceptance = r->n_sampled ? sa / (double)r->n_sampled : NAN;
done:
    free(fl);
    free(id);
    free(acc);
    free(lm);
    H5Fclose(h);
    return st;
}
