/* sim/noise_priv.h — shared by noise.c and noise_io.c; not public. */
#ifndef SEDFLOW_SIM_NOISE_PRIV_H
#define SEDFLOW_SIM_NOISE_PRIV_H

#include "sedflow/noise.h"

/* Allocate the six arrays of t for nbin bins (sets t->nbin). */
sf_status sf_noise__band_alloc(sf_noise_band *t, size_t nbin);

#endif
