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

#endif
