/*
 * sedflow/rng.h — reproducible random streams on top of GSL.
 *
 * sedflow draws every random number from a gsl_rng of type sf_rng_xoshiro
 * (xoshiro256**, Blackman & Vigna 2018), so all of GSL's random variates
 * (gsl_ran_gaussian_ziggurat, gsl_ran_beta, ...) apply.  Reproducibility
 * whatever the thread count comes from *streams*: the state for
 * (seed, stream) is a pure function of both (splitmix64 hashing), so work
 * item i (a simulated galaxy, a posterior, a walker) seeds its own stream i
 * and gets the same numbers on any thread, in any order, after a resume.
 */
#ifndef SEDFLOW_RNG_H
#define SEDFLOW_RNG_H

#include <stdint.h>
#include <gsl/gsl_rng.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The generator type (64-bit output, get_double in [0, 1) with 53 bits). */
extern const gsl_rng_type *sf_rng_xoshiro;

/* Allocate a generator of type sf_rng_xoshiro set to stream (seed, 0).
 * Returns NULL when out of memory.  Free with gsl_rng_free(). */
gsl_rng *sf_rng_alloc(uint64_t seed);

/* Reset generator r (which must be of type sf_rng_xoshiro) to the start of
 * stream `stream` of seed `seed`. Cheap (four splitmix64 steps). */
void sf_rng_set_stream(gsl_rng *r, uint64_t seed, uint64_t stream);

/* Save / restore the position of r (type sf_rng_xoshiro) in its stream:
 * 4 words, so a work item can pause its stream and continue it later. */
void sf_rng_save(const gsl_rng *r, uint64_t state[4]);
void sf_rng_restore(gsl_rng *r, const uint64_t state[4]);

/* splitmix64 finaliser: a bijective 64-bit mix, used to derive seeds. */
uint64_t sf_mix64(uint64_t x);

#ifdef __cplusplus
}
#endif
#endif
