/*
 * model/emulator.h — the PROVABGS neural emulators of FSPS (MODEL.md s3).
 *
 * One emulator = 4 wavelength segments; one segment = an MLP of 8 hidden
 * layers x 256 with the "speculator" activation
 *     h' = (beta + (1 - beta) sigmoid(alpha a)) a,   a = h W + b,
 * mapping the normalised parameters to n_pca normalised PCA coefficients c,
 * then ln L = ((c pca_scale + pca_shift) @ pca_basis) spectrum_scale + spectrum_shift.
 * A batch of n inputs runs layer by layer through CBLAS sgemm, or, for
 * n <= sf_emulator_small_max() (default SF_EMU_SMALL_MAX), through the
 * register-blocked kernel of model/emu_gemm.h on weights packed at load.
 */
#ifndef SEDFLOW_MODEL_EMULATOR_H
#define SEDFLOW_MODEL_EMULATOR_H

#include <hdf5.h>
#include <stddef.h>

#include "model/emu_gemm.h"
#include "sedflow/error.h"

#define SF_EMU_MAXSEG 4
#define SF_EMU_MAXLAYER 9
#define SF_EMU_MAXIN 9
/* Batches of at most this many rows use the small-batch kernel (emu_gemm.h),
 * larger ones sgemm.  Measured (bench_model, 1 thread, CPU time, AMD EPYC
 * Zen 3 shared with other jobs) the kernel is faster at every batch size,
 * 1.8-2.2x at 1-4 rows, 1.6x at 15, 1.2x at 64, 1.1x at 128-1024; 64
 * covers the MCMC (lockstep batches of <= 15 walkers, the pooled sampler's
 * 64-row chunks) and leaves the 256-row chunks of the simulator and of
 * inference on sgemm, bit for bit as before. */
#define SF_EMU_SMALL_MAX 64

typedef struct {
    int n_in;      /* inputs (9 NMF, 4 burst) */
    int n_layers;  /* dense layers incl. output (9) */
    int n_pca;     /* PCA coefficients (30 or 50) */
    int n_wave;    /* wavelengths of this segment in the pickle */
    int skip;      /* leading wavelengths dropped (below 2305 A) */
    int offset;    /* index of the first kept wavelength in the model grid */
    int width[SF_EMU_MAXLAYER + 1];      /* width[0] = n_in, ..., width[n_layers] = n_pca */
    float *W[SF_EMU_MAXLAYER];           /* (width[l], width[l+1]) row-major */
    float *b[SF_EMU_MAXLAYER];           /* (width[l+1]) */
    float *alpha[SF_EMU_MAXLAYER - 1];   /* (width[l+1]) activation parameters */
    float *beta[SF_EMU_MAXLAYER - 1];
    float param_shift[SF_EMU_MAXIN], param_scale[SF_EMU_MAXIN];
    float *pca_basis;     /* (n_pca, n_wave) row-major, pre-multiplied by pca_scale */
    float *pca_offset;    /* (n_wave) pca_shift @ pca_basis, folded once at load */
    float *spec_scale;    /* (n_wave) */
    float *spec_shift;    /* (n_wave) */
    double *wave;         /* (n_wave) rest-frame Angstrom */
    sf_emu_dense dense[SF_EMU_MAXLAYER]; /* W[l], b[l] packed for the small-batch kernel */
    sf_emu_dense pca;     /* pca_basis columns [skip, n_wave) packed, bias pca_offset */
} sf_emu_segment;

typedef struct {
    int n_seg;
    int n_in;
    int n_out;     /* total kept wavelengths */
    int max_width; /* widest hidden layer */
    sf_emu_segment seg[SF_EMU_MAXSEG];
} sf_emulator;

/* Load group `group` ("emulator/nmf") from an open model file; wavelengths
 * below wave_min [A] are dropped.  On error e is left freed. */
sf_status sf_emulator_load(hid_t file, const char *group, double wave_min, sf_emulator *e);
void sf_emulator_free(sf_emulator *e);

/* Floats of scratch sf_emulator_eval needs for a batch of n. */
size_t sf_emulator_work_floats(const sf_emulator *e, size_t n);

/* ln L for n raw (unnormalised) inputs in (n, n_in) row-major: writes
 * ln_lum (n, ld) columns [0, n_out).  work: sf_emulator_work_floats floats. */
void sf_emulator_eval(const sf_emulator *e, size_t n, const float *in, float *ln_lum,
                      size_t ld, float *work);

/* Benchmarks and tests only: set the largest batch that uses the small-batch
 * kernel (0: always sgemm/sgemv; a huge value: always the kernel) and return
 * the previous value.  Process-wide; not for use while other threads evaluate. */
int sf_emulator_set_small_max(int n);
int sf_emulator_small_max(void);

#endif
