/*
 * flow/nsf.h — private layout of the conditional rational-quadratic neural
 * spline flow (family SF_FLOW_NSF; Durkan et al. 2019), sharing struct
 * sf_flow (flow_impl.h) with the MAF: z-scoring, prior box, names, history,
 * parameters in one flat float buffer.  docs/FLOW.md "NSF".
 *
 *   u_0 = (theta - theta_mean) / theta_std,  xz = (x - x_mean) / x_std
 *   layer l = 0..K-1, index list perm_l = (identity dims id_l | transformed dims tr_l):
 *     a  = [u_l[id_l], xz]                                   (din = |id_l| + C)
 *     h1 = tanh(W1 a + b1),  h2 = tanh(W2 h1 + b2)           (H units each)
 *     out = W3 h2 + b3,  3 bins - 1 numbers per transformed dim
 *     u_{l+1}[tr_l[j]] = RQS(u_l[tr_l[j]]; out[j (3bins-1) ...]),  u_{l+1}[id_l] = u_l[id_l]
 *   log q = log N(u_K; 0, I) + sum_l sum_j log RQS'(.) - sum_d log theta_std_d
 *
 * |tr_l| = ceil(D/2) for even l, floor(D/2) for odd l (1 when D = 1, so a
 * 1-D flow has a context-only conditioner), chosen as the dimensions
 * transformed least often so far (ties in seeded random order): every two
 * consecutive layers transform every dimension exactly once.
 *
 * Parameter layout of layer l, at offset off[l] of the flat buffer:
 *   W1[H][din], b1[H], W2[H][H], b2[H], W3[m3][H], b3[m3],  m3 = |tr_l| (3 bins - 1)
 * W1's columns: the identity dims in the order of perm_l, then the C context
 * features.  Rows of out per transformed dim j: [widths bins | heights bins |
 * interior derivatives bins-1] (nsf_spline.h).
 */
#ifndef SEDFLOW_FLOW_NSF_H
#define SEDFLOW_FLOW_NSF_H

#include "flow/flow_impl.h"
#include "flow/nsf_spline.h"

#define SF_NSF_DEFAULT_BINS 8
#define SF_NSF_DEFAULT_TAIL 3.0
#define SF_NSF_W3_INIT 0.1 /* output-layer init: uniform(+-0.1/sqrt(H)), near-identity splines */

struct sf_nsf {
    int bins, np;  /* np = 3 bins - 1 numbers per spline */
    double tail;
    int *n_id;     /* K: identity dims per layer (the rest of perm_l is transformed) */
    size_t *off;   /* K + 1: layer offsets in the parameter buffer */
    int din_max, m3_max;
};

/* Views of layer l's parameters in buffer `base` (params, grads, Adam moments). */
typedef struct {
    float *w1, *b1, *w2, *b2, *w3, *b3;
    int n_id, n_tr, din, m3;
    const int *id, *tr; /* indices into u (perm row l) */
} sf_nsf_layer;

void sf_nsf_layer_of(const sf_flow *f, float *base, int l, sf_nsf_layer *v);

/* Number of identity dims of layer l (D >= 1). */
static inline int sf_nsf_n_id(int D, int l)
{
    if (D == 1) return 0;
    int n_tr = (l % 2 == 0) ? (D + 1) / 2 : D / 2;
    return D - n_tr;
}

/* Conditioner of layer v for n rows (nsf_eval.c):
 *   h1 = tanh(a W1[:, 0:p]^T + b1), h2 = tanh(h1 W2^T + b2), out = h2 W3^T + b3
 * a: n x p (leading dimension lda); p = din with b1 = v->b1, or p = n_id with
 * b1 = the layer's bias plus a fixed context's term (sampling).
 * h1, h2: n x H, out: n x m3. */
void sf_nsf_mlp(const sf_flow *f, const sf_nsf_layer *v, int n, const float *a, int lda, int p, const float *b1,
                float *h1, float *h2, float *out);
/* E[i] = exp(out[i]) for n floats by the vectorised sf_expf (core/fastmath.h;
 * relative error < 2e-7): the spline's softmax and softplus inputs. */
void sf_nsf_exp(const float *out, float *E, size_t n);
/* Apply layer v's splines to rows of u (n x D) in place, forward (inverse =
 * 0) or inverse (inverse = 1), adding each row's forward log-det to ldet.
 * out, E: n x m3 conditioner outputs and their exponentials. */
void sf_nsf_apply(const sf_flow *f, const sf_nsf_layer *v, int n, float *u, const float *out, const float *E,
                  double *ldet, int inverse);
/* a[r] = [u[r][id_l], xz[r]] for n rows (a: n x din). */
void sf_nsf_gather(const sf_flow *f, const sf_nsf_layer *v, int n, const float *u, const float *xz, float *a);


void sf_nsf_free_priv(struct sf_nsf *n);

/* Family entry points behind the public API (nsf_train.c). */
struct sf_nsf_ws;
sf_status sf_nsf_train_ws_alloc(const sf_flow *f, size_t bmax, struct sf_nsf_ws **out);
void sf_nsf_train_ws_free(struct sf_nsf_ws *w);
sf_status sf_nsf_loss_grad(sf_flow *f, struct sf_nsf_ws *w, size_t B, const double *theta, const double *x,
                           double *loss, float *grad, double *logq_rows, int nthreads);

#endif
