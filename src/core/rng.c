/*
 * xoshiro256** as a GSL generator type, with (seed, stream) seeding.
 * Reference: D. Blackman & S. Vigna, "Scrambled linear pseudorandom number
 * generators", ACM TOMS 47 (2021); seeding by splitmix64 as they recommend.
 */
#include "sedflow/rng.h"

#include <string.h>

typedef struct { uint64_t s[4]; } sf__xoshiro_state;

uint64_t sf_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t xoshiro_next(sf__xoshiro_state *st)
{
    uint64_t *s = st->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void seed_state(sf__xoshiro_state *st, uint64_t seed, uint64_t stream)
{
    /* Hash (seed, stream) into one 64-bit key, then expand with splitmix64. */
    uint64_t x = sf_mix64(seed) ^ sf_mix64(stream ^ 0x5851f42d4c957f2dULL);
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        st->s[i] = sf_mix64(x);
    }
    if (!(st->s[0] | st->s[1] | st->s[2] | st->s[3])) st->s[0] = 1; /* never all zero */
}

static void xo_set(void *state, unsigned long int s) { seed_state(state, (uint64_t)s, 0); }

static unsigned long int xo_get(void *state)
{
    return (unsigned long int)xoshiro_next(state);
}

static double xo_get_double(void *state)
{
    return (double)(xoshiro_next(state) >> 11) * 0x1.0p-53;
}

static const gsl_rng_type xoshiro_type = {
    "sf_xoshiro256starstar",
    (unsigned long int)UINT64_MAX, /* max (unsigned long is 64-bit on LP64) */
    0,                             /* min */
    sizeof(sf__xoshiro_state),
    &xo_set, &xo_get, &xo_get_double
};

const gsl_rng_type *sf_rng_xoshiro = &xoshiro_type;

gsl_rng *sf_rng_alloc(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(sf_rng_xoshiro);
    if (r) sf_rng_set_stream(r, seed, 0);
    return r;
}

void sf_rng_set_stream(gsl_rng *r, uint64_t seed, uint64_t stream)
{
    seed_state((sf__xoshiro_state *)r->state, seed, stream);
}

void sf_rng_save(const gsl_rng *r, uint64_t state[4])
{
    memcpy(state, ((const sf__xoshiro_state *)r->state)->s, sizeof(uint64_t[4]));
}

void sf_rng_restore(gsl_rng *r, const uint64_t state[4])
{
    memcpy(((sf__xoshiro_state *)r->state)->s, state, sizeof(uint64_t[4]));
}
