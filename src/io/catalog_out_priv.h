/*
 * io/catalog_out_priv.h — helpers shared by the posterior-catalog writer
 * (catalog_out.c) and its FITS summary table (catalog_fits.c).
 */
#ifndef SEDFLOW_IO_CATALOG_OUT_PRIV_H
#define SEDFLOW_IO_CATALOG_OUT_PRIV_H

#include <hdf5.h>

#include "sedflow/error.h"

/* Fixed-length string type of the `reason` dataset (SF_INFER_REASON_LEN
 * bytes, null-terminated); close with H5Tclose. */
hid_t sf_infer_h5_str_type(void);
/* The boolean type of `sedflow` and `mcmc`: an HDF5 enum FALSE = 0,
 * TRUE = 1 on int8 (h5py reads numpy bool); close with H5Tclose. */
hid_t sf_infer_h5_bool_type(void);
/* Read a whole dataset into data (memtype).  Errors: SF_EFORMAT. */
sf_status sf_infer_h5_read_all(hid_t loc, const char *name, hid_t memtype, void *data);

#endif
