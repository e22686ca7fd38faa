/*
 * The simulation file: extendible, chunked, deflate-compressed HDF5 datasets
 * appended block by block, with the run's options and counts as root
 * attributes (layout: docs/DATA.md).  The caller writes to a temporary name
 * and renames when complete; sf_simfile_resume reopens a partial file.
 */
#include <stdlib.h>
#include <string.h>

#include "io/h5util.h"
#include "sedflow/sim.h"

#define CHUNK_ROWS 4096

typedef struct {
    const char *name;
    int width; /* columns; 1 -> rank-1 dataset */
    int is_int;
    const char *units;
    const char *description;
} column;

static const column COLUMNS[] = {
    {"candidate", 1, 1, "", "global candidate index (random stream) of the row"},
    {"theta", SF_NTHETA, 0, "log10 Msun,-,-,-,-,-,Gyr,-,-,-,-,-",
     "physical parameters: logmstar, beta1..4, fburst, tburst, gamma1, gamma2, tau_bc, tau_ism, n_dust"},
    {"theta_u", SF_NU, 0, "log10 Msun,-,-,-,-,Gyr,dex,dex,-,-,-", "sampling-space parameters (the flow's theta)"},
    {"z", 1, 0, "", "redshift"},
    {"flux_nmgy_true", SF_NBANDS, 0, "nanomaggies", "noiseless ugriz flux from the forward model"},
    {"flux_nmgy", SF_NBANDS, 0, "nanomaggies", "noisy ugriz flux (paper eq. 4)"},
    {"sigma_nmgy", SF_NBANDS, 0, "nanomaggies", "ugriz flux uncertainty"},
    {"mag", SF_NBANDS, 0, "AB mag", "ugriz magnitude of the noisy flux"},
    {"sigma_mag", SF_NBANDS, 0, "mag", "ugriz magnitude uncertainty drawn from the noise model (eq. 5)"},
    {"x", SF_NX, 0, "AB mag,AB mag,AB mag,AB mag,AB mag,mag,mag,mag,mag,mag,-",
     "flow context: mag_u..mag_z, sigma_u..sigma_z, z"},
    {"derived", SF_NDERIVED, 0, "Msun/yr,-,Gyr", "sfr_1gyr, z_mw, tage_mw_gyr"},
};
#define NCOL ((int)(sizeof COLUMNS / sizeof COLUMNS[0]))

struct sf_simfile {
    hid_t file;
    hid_t dset[NCOL];
    size_t nrows;
};

static const char *NAMES_THETA = "logmstar,beta1,beta2,beta3,beta4,fburst,tburst,gamma1,gamma2,tau_bc,tau_ism,n_dust";
static const char *NAMES_U = "logmstar,u1,u2,u3,fburst,tburst,log10_gamma1,log10_gamma2,tau_bc,tau_ism,n_dust";
static const char *NAMES_X = "mag_u,mag_g,mag_r,mag_i,mag_z,sigma_u,sigma_g,sigma_r,sigma_i,sigma_z,z";

static sf_status write_counts(hid_t f, uint64_t next_block, const sf_sim_counts *c, size_t nrows)
{
    sf_status st;
    if ((st = sf_h5_attr_set_long(f, ".", "next_block", (long long)next_block)) ||
        (st = sf_h5_attr_set_long(f, ".", "n_rows", (long long)nrows)) ||
        (st = sf_h5_attr_set_long(f, ".", "n_drawn", c->drawn)) ||
        (st = sf_h5_attr_set_long(f, ".", "n_removed_flux_range", c->cut_flux_range)) ||
        (st = sf_h5_attr_set_long(f, ".", "n_removed_sigma_nonpositive", c->cut_sigma)) ||
        (st = sf_h5_attr_set_long(f, ".", "n_removed_noisy_flux_nonpositive", c->cut_noisy_flux)) ||
        (st = sf_h5_attr_set_long(f, ".", "n_kept", c->kept)))
        return st;
    return SF_OK;
}

sf_status sf_simfile_create(const char *path, const sf_sim_options *opt, const char *noise_source,
                            sf_simfile **out)
{
    *out = NULL;
    sf_simfile *sf = calloc(1, sizeof *sf);
    if (!sf) return SF_ERROR(SF_ENOMEM, "out of memory");
    for (int c = 0; c < NCOL; c++) sf->dset[c] = -1;
    sf_status st = sf_h5_create(path, &sf->file);
    if (st) {
        free(sf);
        return st;
    }
    hid_t f = sf->file;
    for (int c = 0; !st && c < NCOL; c++) {
        const column *col = &COLUMNS[c];
        int rank = col->width > 1 ? 2 : 1;
        hsize_t dims[2] = {0, (hsize_t)col->width}, maxd[2] = {H5S_UNLIMITED, (hsize_t)col->width};
        hsize_t chunk[2] = {CHUNK_ROWS, (hsize_t)col->width};
        hid_t space = H5Screate_simple(rank, dims, maxd);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
        sf->dset[c] = H5Dcreate2(f, col->name, col->is_int ? H5T_STD_I64LE : H5T_IEEE_F64LE, space, H5P_DEFAULT,
                                 dcpl, H5P_DEFAULT);
        H5Pclose(dcpl);
        H5Sclose(space);
        if (sf->dset[c] < 0) st = SF_ERROR(SF_EIO, "cannot create dataset '%s' in %s", col->name, path);
        else if ((st = sf_h5_attr_set_string(f, col->name, "units", col->units)) ||
                 (st = sf_h5_attr_set_string(f, col->name, "description", col->description)))
            break;
    }
    if (!st) st = sf_h5_attr_set_string(f, "theta", "column_names", NAMES_THETA);
    if (!st) st = sf_h5_attr_set_string(f, "theta_u", "column_names", NAMES_U);
    if (!st) st = sf_h5_attr_set_string(f, "x", "column_names", NAMES_X);
    if (!st) st = sf_h5_attr_set_string(f, "flux_nmgy", "column_names", "u,g,r,i,z");
    size_t d1 = SF_NU;
    if (!st) st = sf_h5_write_double(f, "prior/lower", 1, &d1, sf_prior_lower, 0);
    if (!st) st = sf_h5_write_double(f, "prior/upper", 1, &d1, sf_prior_upper, 0);
    if (!st) st = sf_h5_attr_set_string(f, "prior", "kind", sf_prior_name(opt->prior));
    if (!st) st = sf_h5_attr_set_long(f, ".", "format_version", SF_SIM_FORMAT_VERSION);
    if (!st) st = sf_h5_attr_set_string(f, ".", "format", "sedflow-simulation");
    if (!st) st = sf_h5_attr_set_long(f, ".", "seed", (long long)opt->seed);
    if (!st) st = sf_h5_attr_set_string(f, ".", "prior", sf_prior_name(opt->prior));
    if (!st) st = sf_h5_attr_set_double(f, ".", "z_min", opt->z_min);
    if (!st) st = sf_h5_attr_set_double(f, ".", "z_max", opt->z_max);
    if (!st) st = sf_h5_attr_set_long(f, ".", "block", (long long)opt->block);
    if (!st) st = sf_h5_attr_set_string(f, ".", "noise_model", noise_source ? noise_source : "");
    if (!st) st = sf_h5_attr_set_string(f, ".", "code_version", "sedflow " SEDFLOW_VERSION);
    if (!st) st = sf_h5_attr_set_long(f, ".", "complete", 0);
    sf_sim_counts zero = {0};
    if (!st) st = write_counts(f, 0, &zero, 0);
    if (st) {
        sf_simfile_close(sf, 0);
        return st;
    }
    *out = sf;
    return SF_OK;
}

sf_status sf_simfile_resume(const char *path, sf_sim_options *opt, uint64_t *next_block, sf_sim_counts *counts,
                            sf_simfile **out)
{
    *out = NULL;
    sf_h5_quiet();
    sf_simfile *sf = calloc(1, sizeof *sf);
    if (!sf) return SF_ERROR(SF_ENOMEM, "out of memory");
    for (int c = 0; c < NCOL; c++) sf->dset[c] = -1;
    sf->file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (sf->file < 0) {
        free(sf);
        return SF_ERROR(SF_EIO, "cannot reopen partial simulation '%s' for --resume", path);
    }
    hid_t f = sf->file;
    long long v, nb, nrows, seed, block, complete;
    char prior[32];
    sf_status st;
    if ((st = sf_h5_attr_get_long(f, ".", "format_version", &v)) || v != SF_SIM_FORMAT_VERSION ||
        (st = sf_h5_attr_get_long(f, ".", "next_block", &nb)) || (st = sf_h5_attr_get_long(f, ".", "n_rows", &nrows)) ||
        (st = sf_h5_attr_get_long(f, ".", "seed", &seed)) || (st = sf_h5_attr_get_long(f, ".", "block", &block)) ||
        (st = sf_h5_attr_get_long(f, ".", "complete", &complete)) ||
        (st = sf_h5_attr_get_string(f, ".", "prior", prior, sizeof prior)) ||
        (st = sf_prior_parse(prior, &opt->prior)) || (st = sf_h5_attr_get_double(f, ".", "z_min", &opt->z_min)) ||
        (st = sf_h5_attr_get_double(f, ".", "z_max", &opt->z_max)) ||
        (st = sf_h5_attr_get_long(f, ".", "n_drawn", &counts->drawn)) ||
        (st = sf_h5_attr_get_long(f, ".", "n_removed_flux_range", &counts->cut_flux_range)) ||
        (st = sf_h5_attr_get_long(f, ".", "n_removed_sigma_nonpositive", &counts->cut_sigma)) ||
        (st = sf_h5_attr_get_long(f, ".", "n_removed_noisy_flux_nonpositive", &counts->cut_noisy_flux)) ||
        (st = sf_h5_attr_get_long(f, ".", "n_kept", &counts->kept))) {
        sf_simfile_close(sf, 0);
        return st ? st : SF_ERROR(SF_EFORMAT, "%s: not a sedflow simulation of format version %d", path, SF_SIM_FORMAT_VERSION);
    }
    opt->seed = (uint64_t)seed;
    opt->block = (size_t)block;
    for (int c = 0; c < NCOL; c++) {
        sf->dset[c] = H5Dopen2(f, COLUMNS[c].name, H5P_DEFAULT);
        if (sf->dset[c] < 0) {
            sf_simfile_close(sf, 0);
            return SF_ERROR(SF_EFORMAT, "%s: dataset '%s' missing", path, COLUMNS[c].name);
        }
        /* drop rows of a block that was being written when the run stopped */
        hsize_t dims[2] = {(hsize_t)nrows, (hsize_t)COLUMNS[c].width};
        H5Dset_extent(sf->dset[c], dims);
    }
    sf->nrows = (size_t)nrows;
    *next_block = (uint64_t)nb;
    *out = sf;
    return SF_OK;
}

size_t sf_simfile_nrows(const sf_simfile *f) { return f->nrows; }

sf_status sf_simfile_append(sf_simfile *sf, const sf_sim_rows *rows, size_t n, uint64_t next_block,
                            const sf_sim_counts *counts)
{
    const void *data[NCOL] = {rows->candidate, rows->theta, rows->theta_u, rows->z, rows->flux_true, rows->flux,
                              rows->sigma_flux, rows->mag, rows->sigma_mag, rows->x, rows->derived};
    for (int c = 0; n > 0 && c < NCOL; c++) {
        const column *col = &COLUMNS[c];
        int rank = col->width > 1 ? 2 : 1;
        hsize_t newdims[2] = {(hsize_t)(sf->nrows + n), (hsize_t)col->width};
        if (H5Dset_extent(sf->dset[c], newdims) < 0) return SF_ERROR(SF_EIO, "cannot extend '%s'", col->name);
        hid_t fs = H5Dget_space(sf->dset[c]);
        hsize_t start[2] = {(hsize_t)sf->nrows, 0}, count[2] = {(hsize_t)n, (hsize_t)col->width};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(rank, count, NULL);
        herr_t e = H5Dwrite(sf->dset[c], col->is_int ? H5T_NATIVE_LLONG : H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT,
                            data[c]);
        H5Sclose(ms);
        H5Sclose(fs);
        if (e < 0) return SF_ERROR(SF_EIO, "cannot write '%s' (disk full?)", col->name);
    }
    sf->nrows += n;
    sf_status st = write_counts(sf->file, next_block, counts, sf->nrows);
    if (st) return st;
    if (H5Fflush(sf->file, H5F_SCOPE_GLOBAL) < 0) return SF_ERROR(SF_EIO, "cannot flush the simulation file");
    return SF_OK;
}

sf_status sf_simfile_close(sf_simfile *sf, int complete)
{
    if (!sf) return SF_OK;
    sf_status st = SF_OK;
    if (complete) st = sf_h5_attr_set_long(sf->file, ".", "complete", 1);
    for (int c = 0; c < NCOL; c++)
        if (sf->dset[c] >= 0) H5Dclose(sf->dset[c]);
    if (H5Fclose(sf->file) < 0 && !st) st = SF_ERROR(SF_EIO, "cannot close the simulation file");
    free(sf);
    return st;
}
