/*
 * core/fastmath.h — a vectorisable single-precision exp for the emulator's
 * activations and spectra (the hot loops run ~16,000 of them per SED).
 *
 * sf_expf: Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, a
 * degree-6 minimax polynomial for e^r, and 2^n built in the exponent bits.
 * Relative error < 2e-7 over [-87, 88] (checked in tests/test_model.c
 * against libm); inputs are clamped to that range (e^-87 ~ 1.6e-38, the
 * smallest normal float, so the clamp changes nothing measurable).  Written
 * branch-free so that GCC vectorises loops calling it (AVX2: 8 at a time).
 */
#ifndef SEDFLOW_CORE_FASTMATH_H
#define SEDFLOW_CORE_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float sf_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float fn = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t n = (int32_t)fn;
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
