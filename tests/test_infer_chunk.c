/*
 * The posterior-sample rows written as finished chunks
 * (src/io/catalog_out_chunk.c): every level and store_low setting, on noisy
 * samples, NaN rows, NaN tails, signed zeros, infinities, denormals and
 * tiny rows, written with H5Dwrite_chunk into a shuffle + deflate dataset of
 * one-row chunks and read back through HDF5's own filters bit-identical;
 * level 1 smaller than zlib level 1 on noisy samples; which datasets
 * sf_chunk_f32_direct_level accepts; errors.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <zlib.h>

#include "io/catalog_out_chunk.h"
#include "io/h5util.h"
#include <gsl/gsl_randist.h>

#include "sedflow/rng.h"
#include "testutil.h"

#define NROW 8

/* Dataset of nrow x n float32 with the given chunk rows and filters. */
static hid_t make_ds(hid_t f, const char *name, hid_t type, size_t nrow, size_t n, size_t chunk_rows, int shuffle,
                     int deflate)
{
    hsize_t dims[2] = {nrow, n}, chunk[2] = {chunk_rows, n};
    hid_t sp = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    if (shuffle) H5Pset_shuffle(dcpl);
    if (deflate) H5Pset_deflate(dcpl, (unsigned)deflate);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return d;
}

/* Row r of the test data: kinds of content a posterior row can have. */
static void fill_row(float *x, size_t n, int r, gsl_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        double g = gsl_ran_gaussian_ziggurat(rng, 1.0);
        switch (r) {
        case 0: x[i] = (float)(10.5 + 0.2 * g); break;                  /* logmstar-like */
        case 1: x[i] = (float)gsl_rng_uniform(rng); break;             /* a weight in [0, 1) */
        case 2: x[i] = NAN; break;                                      /* not sampled */
        case 3: x[i] = i < n / 3 ? (float)(g * 1e-3) : NAN; break;      /* few samples, NaN tail */
        case 4: x[i] = (float)(-3.0 + g); break;                        /* negative values */
        case 5: {                                                        /* special values */
            static const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-45f, -1e-40f, 3.4e38f, 1.0f};
            x[i] = sp[i % 8];
            break;
        }
        case 6: x[i] = 7.25f; break;                                    /* constant */
        default: x[i] = (float)(g * exp(3 * g)); break;                 /* wide range */
        }
    }
}

/* Encode rows with (level, store_low), write them as chunks, read back. */
static void roundtrip(hid_t f, size_t n, int level, int store_low, const float *x, size_t *bytes)
{
    char name[64];
    snprintf(name, sizeof name, "n%zu_l%d_s%d", n, level, store_low);
    hid_t d = make_ds(f, name, H5T_IEEE_F32LE, NROW, n, 1, 1, level);
    CHECK(sf_chunk_f32_direct_level(d) == level, "%s: direct level %d", name, sf_chunk_f32_direct_level(d));
    size_t cap = sf_chunk_f32_bound(n), len = 0, fails = 0;
    unsigned char *shuf = malloc(4 * n), *out = malloc(cap);
    *bytes = 0;
    for (int r = 0; r < NROW; r++) {
        sf_status st = sf_chunk_f32_encode(x + (size_t)r * n, n, level, store_low, shuf, out, cap, &len);
        hsize_t off[2] = {(hsize_t)r, 0};
        if (st || H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, len, out) < 0) fails++;
        *bytes += len;
    }
    CHECK(fails == 0, "%s: %zu rows encoded and written (%zu failures)", name, (size_t)NROW, fails);
    float *y = malloc(NROW * n * sizeof(float));
    memset(y, 0xA5, NROW * n * sizeof(float));
    herr_t e = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    size_t diff = 0;
    for (size_t i = 0; i < NROW * n; i++) diff += memcmp(&x[i], &y[i], sizeof(float)) != 0;
    CHECK(e >= 0 && diff == 0, "%s: read back through HDF5's filters bit-identical (%zu values differ)", name, diff);
    free(y);
    free(shuf);
    free(out);
    H5Dclose(d);
}

int main(void)
{
    const char *path = "test_infer_chunk.h5";
    hid_t f;
    sf_status st = sf_h5_create(path, &f);
    CHECK(!st, "create %s", path);
    if (st) return tu_finish("test_infer_chunk");
    static const size_t sizes[] = {10000, 3, 1};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *x = malloc(NROW * n * sizeof(float));
        gsl_rng *rng = sf_rng_alloc(42 + n);
        for (int r = 0; r < NROW; r++) fill_row(x + (size_t)r * n, n, r, rng);
        gsl_rng_free(rng);
        static const int lv[][2] = {{1, 1}, {1, 0}, {2, 0}, {6, 0}, {9, 1}};
        for (int k = 0; k < 5; k++) {
            size_t bytes;
            roundtrip(f, n, lv[k][0], lv[k][1], x, &bytes);
        }
        free(x);
    }
    /* size on noisy samples (rows 0, 1, 4: the low mantissa planes are noise) */
    {
        size_t n = 10000, cap = sf_chunk_f32_bound(n), len, ours = 0, zl = 0;
        float *x = malloc(n * sizeof(float));
        unsigned char *shuf = malloc(4 * n), *out = malloc(cap);
        gsl_rng *rng = sf_rng_alloc(7);
        for (int r = 0; r < 3; r++) {
            fill_row(x, n, r == 2 ? 4 : r, rng);
            sf_chunk_f32_encode(x, n, 1, 1, shuf, out, cap, &len);
            ours += len;
            uLongf zlen = (uLongf)cap;
            compress2(out, &zlen, shuf, (uLong)(4 * n), 1); /* shuf: this row shuffled */
            zl += (size_t)zlen;
        }
        gsl_rng_free(rng);
        CHECK(ours < zl, "level 1 on noisy samples: %zu bytes <= zlib level 1's %zu", ours, zl);
        /* errors */
        CHECK(sf_chunk_f32_encode(x, n, 0, 1, shuf, out, cap, &len) == SF_EINVAL, "level 0 refused");
        CHECK(sf_chunk_f32_encode(x, n, 10, 1, shuf, out, cap, &len) == SF_EINVAL, "level 10 refused");
        CHECK(sf_chunk_f32_encode(x, n, 1, 1, shuf, out, cap - 1, &len) == SF_EINVAL && len == 0,
              "an output buffer below sf_chunk_f32_bound refused");
        CHECK(sf_chunk_f32_encode(x, 0, 1, 1, shuf, out, cap, &len) == SF_EINVAL, "n = 0 refused");
        free(x);
        free(shuf);
        free(out);
    }
    /* which datasets can be written chunk by chunk */
    {
        struct {
            const char *name;
            hid_t type;
            size_t chunk_rows;
            int shuffle, deflate, want;
        } c[] = {{"ok4", H5T_IEEE_F32LE, 1, 1, 4, 4},   {"rows8", H5T_IEEE_F32LE, 8, 1, 1, 0},
                 {"noshuf", H5T_IEEE_F32LE, 1, 0, 1, 0}, {"nodefl", H5T_IEEE_F32LE, 1, 1, 0, 0},
                 {"raw", H5T_IEEE_F32LE, 1, 0, 0, 0},    {"f64", H5T_IEEE_F64LE, 1, 1, 1, 0},
                 {"f32be", H5T_IEEE_F32BE, 1, 1, 1, 0}};
        for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
            hid_t d = make_ds(f, c[k].name, c[k].type, NROW, 100, c[k].chunk_rows, c[k].shuffle, c[k].deflate);
            int got = sf_chunk_f32_direct_level(d);
            CHECK(got == c[k].want, "direct level of %s: %d (want %d)", c[k].name, got, c[k].want);
            H5Dclose(d);
        }
        /* deflate before shuffle */
        hsize_t dims[2] = {NROW, 100}, chunk[2] = {1, 100};
        hid_t sp = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 2, chunk);
        H5Pset_deflate(dcpl, 1);
        H5Pset_shuffle(dcpl);
        hid_t d = H5Dcreate2(f, "swapped", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        CHECK(sf_chunk_f32_direct_level(d) == 0, "direct level of deflate-then-shuffle: 0");
        H5Dclose(d);
        H5Pclose(dcpl);
        H5Sclose(sp);
    }
    H5Fclose(f);
    remove(path);
    return tu_finish("test_infer_chunk");
}
