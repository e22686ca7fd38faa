/*
 * PROVABGS emulator evaluation (MODEL.md s3): loading from the prepared HDF5
 * file and the batched forward pass over CBLAS sgemm.
 *
 * At load time the PCA de-normalisation is folded into the basis:
 *   (c * pca_scale + pca_shift) @ B = c @ (diag(pca_scale) B) + (pca_shift @ B)
 * so evaluation is one sgemm plus an affine map per wavelength.
 *
 * Small batches (n <= sf_emulator_small_max()) run the dense layers and the
 * PCA product through sf_emu_dense_eval (emu_gemm.c) on copies of W and of
 * the kept PCA basis packed into column panels at load; larger batches use
 * sgemm on the row-major originals.  Both paths apply the same activation and
 * affine maps; they differ by float rounding in the sums only.
 */
#include "model/emulator.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fastmath.h"
#include "io/h5util.h"

static atomic_int small_max = SF_EMU_SMALL_MAX;

int sf_emulator_set_small_max(int n) { return atomic_exchange(&small_max, n); }
int sf_emulator_small_max(void) { return atomic_load_explicit(&small_max, memory_order_relaxed); }

static void segment_free(sf_emu_segment *s)
{
    for (int l = 0; l < SF_EMU_MAXLAYER; l++) {
        sf_emu_dense_free(&s->dense[l]);
        free(s->W[l]);
        free(s->b[l]);
        if (l < SF_EMU_MAXLAYER - 1) {
            free(s->alpha[l]);
            free(s->beta[l]);
        }
    }
    sf_emu_dense_free(&s->pca);
    free(s->pca_basis);
    free(s->pca_offset);
    free(s->spec_scale);
    free(s->spec_shift);
    free(s->wave);
    memset(s, 0, sizeof *s);
}

void sf_emulator_free(sf_emulator *e)
{
    if (!e) return;
    for (int i = 0; i < SF_EMU_MAXSEG; i++) segment_free(&e->seg[i]);
    e->n_seg = 0;
}

static sf_status segment_load(hid_t g, double wave_min, sf_emu_segment *s)
{
    long long n_layers, n_in, n_pca, n_wave;
    sf_status st;
    if ((st = sf_h5_attr_get_long(g, ".", "n_layers", &n_layers)) ||
        (st = sf_h5_attr_get_long(g, ".", "n_param", &n_in)) ||
        (st = sf_h5_attr_get_long(g, ".", "n_pca", &n_pca)) ||
        (st = sf_h5_attr_get_long(g, ".", "n_wave", &n_wave)))
        return st;
    if (n_layers < 2 || n_layers > SF_EMU_MAXLAYER || n_in < 1 || n_in > SF_EMU_MAXIN || n_pca < 1 || n_wave < 1)
        return SF_ERROR(SF_EFORMAT, "emulator segment has an unsupported shape");
    s->n_layers = (int)n_layers;
    s->n_in = (int)n_in;
    s->n_pca = (int)n_pca;
    s->n_wave = (int)n_wave;
    char name[32];
    int width = (int)n_in;
    s->width[0] = width;
    for (int l = 0; l < s->n_layers; l++) {
        int rank;
        size_t dims[4];
        snprintf(name, sizeof name, "W%d", l);
        if ((st = sf_h5_shape(g, name, &rank, dims))) return st;
        if (rank != 2 || (int)dims[0] != width) return SF_ERROR(SF_EFORMAT, "emulator %s has a wrong shape", name);
        int out = (int)dims[1];
        if ((st = sf_h5_read_float(g, name, 0, &s->W[l], NULL))) return st;
        snprintf(name, sizeof name, "b%d", l);
        if ((st = sf_h5_read_float(g, name, (size_t)out, &s->b[l], NULL))) return st;
        if (l < s->n_layers - 1) {
            snprintf(name, sizeof name, "alpha%d", l);
            if ((st = sf_h5_read_float(g, name, (size_t)out, &s->alpha[l], NULL))) return st;
            snprintf(name, sizeof name, "beta%d", l);
            if ((st = sf_h5_read_float(g, name, (size_t)out, &s->beta[l], NULL))) return st;
        }
        width = out;
        s->width[l + 1] = out;
    }
    if (width != s->n_pca) return SF_ERROR(SF_EFORMAT, "emulator output width %d != n_pca %d", width, s->n_pca);
    if ((st = sf_h5_read_float_into(g, "param_shift", (size_t)n_in, s->param_shift)) ||
        (st = sf_h5_read_float_into(g, "param_scale", (size_t)n_in, s->param_scale)))
        return st;
    float *pca_shift = NULL, *pca_scale = NULL;
    if ((st = sf_h5_read_float(g, "pca_shift", (size_t)n_pca, &pca_shift, NULL)) ||
        (st = sf_h5_read_float(g, "pca_scale", (size_t)n_pca, &pca_scale, NULL)) ||
        (st = sf_h5_read_float(g, "pca_basis", (size_t)(n_pca * n_wave), &s->pca_basis, NULL)) ||
        (st = sf_h5_read_float(g, "spectrum_shift", (size_t)n_wave, &s->spec_shift, NULL)) ||
        (st = sf_h5_read_float(g, "spectrum_scale", (size_t)n_wave, &s->spec_scale, NULL)) ||
        (st = sf_h5_read_double(g, "wave_rest_A", (size_t)n_wave, &s->wave, NULL))) {
        free(pca_shift);
        free(pca_scale);
        return st;
    }
    s->pca_offset = calloc((size_t)n_wave, sizeof(float));
    if (!s->pca_offset) {
        free(pca_shift);
        free(pca_scale);
        return SF_ERROR(SF_ENOMEM, "out of memory");
    }
    /* Fold the PCA de-normalisation into the basis (double accumulation). */
    for (int j = 0; j < s->n_wave; j++) {
        double off = 0;
        for (int k = 0; k < s->n_pca; k++) off += (double)pca_shift[k] * s->pca_basis[(size_t)k * n_wave + j];
        s->pca_offset[j] = (float)off;
    }
    for (int k = 0; k < s->n_pca; k++)
        for (int j = 0; j < s->n_wave; j++) s->pca_basis[(size_t)k * n_wave + j] *= pca_scale[k];
    free(pca_shift);
    free(pca_scale);
    s->skip = 0;
    while (s->skip < s->n_wave && s->wave[s->skip] < wave_min) s->skip++;
    for (int l = 0; l < s->n_layers; l++)
        if ((st = sf_emu_dense_pack(&s->dense[l], s->width[l], s->width[l + 1], s->W[l], (size_t)s->width[l + 1], s->b[l])))
            return st;
    if (s->skip == s->n_wave) return SF_OK; /* nothing kept: s->pca stays empty (no panels) */
    return sf_emu_dense_pack(&s->pca, s->n_pca, s->n_wave - s->skip, s->pca_basis + s->skip, (size_t)s->n_wave,
                             s->pca_offset + s->skip);
}

sf_status sf_emulator_load(hid_t file, const char *group, double wave_min, sf_emulator *e)
{
    memset(e, 0, sizeof *e);
    if (!sf_h5_exists(file, group)) return SF_ERROR(SF_EFORMAT, "group '%s' missing from the model file", group);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    long long nseg = 0;
    sf_status st = sf_h5_attr_get_long(g, ".", "n_segments", &nseg);
    if (!st && (nseg < 1 || nseg > SF_EMU_MAXSEG)) st = SF_ERROR(SF_EFORMAT, "%s: %lld segments", group, nseg);
    for (int i = 0; !st && i < (int)nseg; i++) {
        char name[16];
        snprintf(name, sizeof name, "seg%d", i);
        if (!sf_h5_exists(g, name)) {
            st = SF_ERROR(SF_EFORMAT, "%s/%s missing", group, name);
            break;
        }
        hid_t gs = H5Gopen2(g, name, H5P_DEFAULT);
        st = segment_load(gs, wave_min, &e->seg[i]);
        H5Gclose(gs);
        e->n_seg = i + 1;
    }
    H5Gclose(g);
    if (st) {
        sf_emulator_free(e);
        return st;
    }
    e->n_in = e->seg[0].n_in;
    int off = 0, mw = 0;
    for (int i = 0; i < e->n_seg; i++) {
        sf_emu_segment *s = &e->seg[i];
        if (s->n_in != e->n_in) {
            sf_emulator_free(e);
            return SF_ERROR(SF_EFORMAT, "%s: segments disagree on the number of inputs", group);
        }
        s->offset = off;
        off += s->n_wave - s->skip;
        for (int l = 1; l < s->n_layers; l++) mw = s->width[l] > mw ? s->width[l] : mw;
        mw = s->n_pca > mw ? s->n_pca : mw;
    }
    e->n_out = off;
    e->max_width = mw;
    return SF_OK;
}

size_t sf_emulator_work_floats(const sf_emulator *e, size_t n)
{
    /* two ping-pong activation buffers of (n, max_width) + normalised inputs */
    return n * (2 * (size_t)e->max_width + SF_EMU_MAXIN);
}

/* h <- (beta + (1 - beta) sigmoid(alpha h)) h, elementwise over (n, w). */
static void activation(float *restrict h, size_t n, int w, const float *restrict alpha,
                       const float *restrict beta)
{
    for (size_t i = 0; i < n; i++) {
        float *restrict row = h + i * (size_t)w;
        for (int j = 0; j < w; j++) {
            float a = row[j];
            float sig = 1.0f / (1.0f + sf_expf(-alpha[j] * a));
            row[j] = (beta[j] + (1.0f - beta[j]) * sig) * a;
        }
    }
}

/* out (n, ld) columns [0, nw) <- out * scale + shift (the spectrum de-normalisation). */
static void spectrum_affine(float *out, size_t ld, size_t n, int nw, const float *restrict sc,
                            const float *restrict sh)
{
    for (size_t i = 0; i < n; i++) {
        float *restrict row = out + i * ld;
        for (int j = 0; j < nw; j++) row[j] = row[j] * sc[j] + sh[j];
    }
}

void sf_emulator_eval(const sf_emulator *e, size_t n, const float *in, float *ln_lum, size_t ld,
                      float *work)
{
    const int sm = sf_emulator_small_max();
    const int small = sm > 0 && n <= (size_t)sm;
    float *x = work;                          /* (n, n_in) normalised */
    float *h0 = x + n * SF_EMU_MAXIN;         /* (n, max_width) */
    float *h1 = h0 + n * (size_t)e->max_width;
    for (int si = 0; si < e->n_seg; si++) {
        const sf_emu_segment *s = &e->seg[si];
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < s->n_in; k++)
                x[i * (size_t)s->n_in + k] = (in[i * (size_t)e->n_in + k] - s->param_shift[k]) / s->param_scale[k];
        const float *src = x;
        float *dst = h0;
        int nw = s->n_wave - s->skip;
        float *out = ln_lum + s->offset;
        if (small) {
            for (int l = 0; l < s->n_layers; l++) {
                int wi = s->width[l], wo = s->width[l + 1];
                const sf_emu_dense *next = l + 1 < s->n_layers ? &s->dense[l + 1] : &s->pca;
                sf_emu_dense_eval(&s->dense[l], n, src, (size_t)wi, dst, (size_t)wo, next);
                if (l < s->n_layers - 1) activation(dst, n, wo, s->alpha[l], s->beta[l]);
                src = dst;
                dst = (dst == h0) ? h1 : h0;
            }
            const sf_emu_dense *next = si + 1 < e->n_seg ? &e->seg[si + 1].dense[0] : NULL;
            sf_emu_dense_eval(&s->pca, n, src, (size_t)s->n_pca, out, ld, next);
            spectrum_affine(out, ld, n, nw, s->spec_scale + s->skip, s->spec_shift + s->skip);
            continue;
        }
        for (int l = 0; l < s->n_layers; l++) {
            int wi = s->width[l], wo = s->width[l + 1];
            for (size_t i = 0; i < n; i++) memcpy(dst + i * (size_t)wo, s->b[l], (size_t)wo * sizeof(float));
            if (n == 1) /* one galaxy: a matrix-vector product, no packing */
                cblas_sgemv(CblasRowMajor, CblasTrans, wi, wo, 1.0f, s->W[l], wo, src, 1, 1.0f, dst, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, wo, wi, 1.0f, src, wi,
                            s->W[l], wo, 1.0f, dst, wo);
            if (l < s->n_layers - 1) activation(dst, n, wo, s->alpha[l], s->beta[l]);
            src = dst;
            dst = (dst == h0) ? h1 : h0;
        }
        /* src: (n, n_pca) coefficients. ln L = (c @ B' + offset) * scale + shift. */
        for (size_t i = 0; i < n; i++) memcpy(out + i * ld, s->pca_offset + s->skip, (size_t)nw * sizeof(float));
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasTrans, s->n_pca, nw, 1.0f, s->pca_basis + s->skip, s->n_wave, src, 1,
                        1.0f, out, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, nw, s->n_pca, 1.0f, src, s->n_pca,
                        s->pca_basis + s->skip, s->n_wave, 1.0f, out, (int)ld);
        spectrum_affine(out, ld, n, nw, s->spec_scale + s->skip, s->spec_shift + s->skip);
    }
}
