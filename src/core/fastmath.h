/*
 * core/fastmath.h — a vectorisable single-precision exp for the emulator's
 * activations and spectra (the hot loops run ~16,000 of them per SED).
 *
 * sf_expf: x = n ln2 + r with |r| <= ln2/2 (n by the 1.5 * 2^23 rounding
 * trick, read back from the float's bits), a degree-6 Cephes polynomial for
 * e^r, and 2^n built in the exponent bits.  Relative error < 2e-7 on
 * [-87, 88] (tests/test_model.c checks it against libm).  Outside that range
 * the exponent is clamped to the normal floats: x < -87 gives a value below
 * ~2e-38 instead of a denormal or 0, x > 88 gives ~3e38 instead of inf;
 * |x| must stay below ~2.9e6 and not be NaN.  No branches and no libm calls,
 * so GCC vectorises the loops that call it (8 lanes with AVX2).
 */
#ifndef SEDFLOW_CORE_FASTMATH_H
#define SEDFLOW_CORE_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float sf_expf(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + magic;
    float fn = t - magic;
    int32_t tbits;
    memcpy(&tbits, &t, sizeof tbits);
    int32_t n = tbits - 0x4B400000; /* the integer fn, from the bits of t */
    n = n < -126 ? -126 : n;
    n = n > 127 ? 127 : n;
    float r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
