/*
 * Derived properties of many posterior samples of one galaxy (MODEL.md s5):
 * the model's own code (src/model/sfh.c) with one sf_sfh_plan per galaxy,
 * so that the work depending on the redshift alone is done once, not once
 * per sample.  tests/test_infer.c checks it equals sf_model_derived.
 */
#include "infer/infer_priv.h"
#include "sedflow/model.h"

sf_status sf_infer_derived(const sf_infer *p, size_t n, const double *theta, double z, double *derived)
{
    double tage;
    sf_status st = sf_cosmo_tage_gyr(&p->cosmo, z, &tage);
    if (st) return st;
    sf_sfh_plan plan;
    sf_sfh_plan_init(&p->basis, tage, &plan);
    sf_sfh_derived_plan(&plan, n, theta, derived);
    return SF_OK;
}
