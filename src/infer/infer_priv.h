/*
 * infer/infer_priv.h — internals shared by src/infer/infer*.c and the output
 * writer src/io/catalog_out.c.
 */
#ifndef SEDFLOW_INFER_PRIV_H
#define SEDFLOW_INFER_PRIV_H

#include "model/sfh.h"
#include "sedflow/cosmo.h"
#include "sedflow/infer.h"
#include "sedflow/prior.h"

struct sf_infer {
    sf_infer_options opt;       /* max_proposals resolved (never 0) */
    sf_flow *flow;
    double lower[SF_NU], upper[SF_NU]; /* the flow's prior box (sampling space) */
    sf_nmf_basis basis;         /* SFH/ZH bases of the prepared model data */
    sf_cosmo cosmo;             /* Planck13 */
    int have_cosmo;
    sf_noise *noise;
    sf_infer_support support;
    uint64_t model_hash;        /* sf_infer_model_hash */
};

/* Append "; text" to a galaxy's reason (replacing "ok"), bounded by
 * SF_INFER_REASON_LEN. */
void sf_infer_reason_add(char *reason, const char *text);

/* Per-thread scratch for one galaxy's N samples. */
typedef struct {
    double *u;     /* N x 11 sampling-space samples (the input of sf_infer_store) */
    double *theta; /* N x 12 physical parameters */
    double *der;   /* N x 3 derived properties (sfr_1gyr, z_mw, tage_mw) */
    double *tmp;   /* N: one quantity, reordered by the quantiles */
} sf_infer_work;

int sf_infer_work_alloc(sf_infer_work *w, size_t N); /* 0 or -1 (out of memory) */
void sf_infer_work_free(sf_infer_work *w);

/* Slot `slot` of b from the first nacc samples w->u (in the prior box) of a
 * galaxy at redshift z: the 12 physical parameters (sf_u_to_theta), the
 * derived properties (sf_infer_derived), samples as float (NaN beyond
 * nacc), p16/p50/p84 summaries (NaN when nacc = 0).  The one path of flow
 * and MCMC samples.  Errors: those of sf_infer_derived. */
sf_status sf_infer_store(const sf_infer *p, sf_infer_work *w, size_t nacc, double z, size_t slot, sf_infer_block *b);

#endif
