/*
 * flow/nsf_spline.h — monotonic rational-quadratic spline on [-B, B] with
 * identity ("linear") tails, Durkan, Bekasov, Murray & Papamakarios 2019,
 * "Neural Spline Flows", sect. 3.1 and appendix A, with the conventions of
 * nflows' `unconstrained_rational_quadratic_spline` (tails="linear"):
 *
 *   raw[0..K)     unnormalised bin widths   -> softmax -> w_i = mb + (1 - mb K) softmax_i
 *   raw[K..2K)    unnormalised bin heights  -> the same with heights
 *   raw[2K..3K-1) unnormalised interior derivatives d_1..d_{K-1}
 *                 = md + softplus(raw + c0), c0 = log(e^(1-md) - 1), so raw = 0
 *                 gives derivative 1 (identity spline when all raw = 0);
 *                 d_0 = d_K = 1 (matches the identity tails: C^1 at +-B).
 *   knots x_j = -B + 2B sum_{i<j} w_i (x_0 = -B, x_K = B exactly), y_j likewise.
 *
 * In bin k, with t = (x - x_k)/w_k, s = h_k/w_k (eq. 4-5 of the paper):
 *   y = y_k + h_k (s t^2 + d_k t(1-t)) / (s + (d_k + d_{k+1} - 2s) t(1-t))
 *   dy/dx = s^2 (d_{k+1} t^2 + 2 s t(1-t) + d_k (1-t)^2) / den^2
 * Outside [-B, B] y = x, log|dy/dx| = 0.  The inverse solves the quadratic
 * in t in the numerically stable form t = 2c / (-b - sqrt(b^2 - 4ac)).
 * All arithmetic in double (the inputs come from float networks).
 */
#ifndef SEDFLOW_NSF_SPLINE_H
#define SEDFLOW_NSF_SPLINE_H

#include <math.h>

#define SF_NSF_MIN_BIN 1e-3   /* minimal bin width and height (fraction of 2B) */
#define SF_NSF_MIN_DERIV 1e-3 /* minimal knot derivative */
#define SF_NSF_MAX_BINS 64

/* c0 = log(exp(1 - md) - 1), so softplus(c0) + md = 1; ec0 = exp(c0). */
#define SF_RQS_EC0 1.7155649053185666
#define SF_RQS_C0 0.539742417236952

static inline double sf_rqs_softplus(double v) { return v > 30 ? v : (v < -30 ? exp(v) : log1p(exp(v))); }

/* Softmax of raw[0..K) into p, then knots c[0..K] on [-B, B].  ex (may be
 * NULL): exp(raw[i]) computed by the caller (the flow: one vectorised float
 * pass over a layer's outputs), used when all |raw| < 80. */
static inline void sf_rqs_knots(int K, double B, const double *raw, const double *ex, double *p, double *c)
{
    double m = raw[0], mn = raw[0], sum = 0;
    for (int i = 1; i < K; i++) m = raw[i] > m ? raw[i] : m, mn = raw[i] < mn ? raw[i] : mn;
    if (ex && m < 80 && mn > -80)
        for (int i = 0; i < K; i++) sum += (p[i] = ex[i]);
    else
        for (int i = 0; i < K; i++) sum += (p[i] = exp(raw[i] - m));
    const double inv = 1 / sum, a = 1 - SF_NSF_MIN_BIN * K;
    double acc = 0;
    c[0] = -B;
    for (int i = 0; i < K; i++) {
        p[i] *= inv; /* the softmax value (kept for the backward pass) */
        acc += SF_NSF_MIN_BIN + a * p[i];
        c[i + 1] = -B + 2 * B * acc;
    }
    c[K] = B;
}

/* Largest k in [0, K-1] with c[k] <= v (v inside [c[0], c[K]]). */
static inline int sf_rqs_bin(int K, const double *c, double v)
{
    int k = 0;
    while (k + 1 < K && v >= c[k + 1]) k++;
    return k;
}

/* z = exp(raw[i] + c0) (from ex[i] = exp(raw[i]) when given and safe, else
 * NAN: the caller then uses the raw value). */
static inline double sf_rqs_ez(const double *raw, const double *ex, int i)
{
    const double v = raw[i] + SF_RQS_C0;
    return (ex && v < 15 && v > -80) ? ex[i] * SF_RQS_EC0 : (v < 30 ? exp(v) : NAN);
}

/* Interior knot derivative j (1..K-1): md + softplus(raw[2K + j - 1] + c0). */
static inline double sf_rqs_deriv(int K, const double *raw, const double *ex, int j)
{
    const double z = sf_rqs_ez(raw, ex, 2 * K + j - 1);
    if (isnan(z)) return SF_NSF_MIN_DERIV + raw[2 * K + j - 1] + SF_RQS_C0;
    /* the flow's (float-exponential) path: float log1p, ~2x faster */
    return SF_NSF_MIN_DERIV + (ex ? (double)log1pf((float)z) : log1p(z));
}

/* d softplus / d raw of interior knot j: sigmoid(raw + c0). */
static inline double sf_rqs_deriv_slope(int K, const double *raw, const double *ex, int j)
{
    const double z = sf_rqs_ez(raw, ex, 2 * K + j - 1);
    return isnan(z) ? 1.0 : z / (1 + z);
}

/* log in double, or in float on the flow's float-exponential path. */
static inline double sf_rqs_log(const double *ex, double v) { return ex ? (double)logf((float)v) : log(v); }

/* Knot derivatives d_k, d_{k+1} of bin k (d_0 = d_K = 1). */
static inline void sf_rqs_derivs(int K, const double *raw, const double *ex, int k, double *dk, double *dk1)
{
    *dk = k == 0 ? 1.0 : sf_rqs_deriv(K, raw, ex, k);
    *dk1 = k == K - 1 ? 1.0 : sf_rqs_deriv(K, raw, ex, k + 1);
}

/* Forward: y = spline(x), *ld = log dy/dx. */
static inline double sf_rqs_forward_ex(int K, double B, const double *raw, const double *ex, double x, double *ld)
{
    if (!(x >= -B && x <= B)) {
        *ld = 0;
        return x;
    }
    double p[SF_NSF_MAX_BINS], cw[SF_NSF_MAX_BINS + 1], ch[SF_NSF_MAX_BINS + 1], dk, dk1;
    sf_rqs_knots(K, B, raw, ex, p, cw);
    sf_rqs_knots(K, B, raw + K, ex ? ex + K : NULL, p, ch);
    const int k = sf_rqs_bin(K, cw, x);
    sf_rqs_derivs(K, raw, ex, k, &dk, &dk1);
    const double w = cw[k + 1] - cw[k], h = ch[k + 1] - ch[k], s = h / w;
    double t = (x - cw[k]) / w;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    const double tt1 = t * (1 - t), den = s + (dk + dk1 - 2 * s) * tt1;
    const double P = dk1 * t * t + 2 * s * tt1 + dk * (1 - t) * (1 - t);
    *ld = sf_rqs_log(ex, s * s * P / (den * den));
    return ch[k] + h * (s * t * t + dk * tt1) / den;
}

/* Inverse: x = spline^{-1}(y), *ld = log dy/dx at x (the forward log-det). */
static inline double sf_rqs_inverse_ex(int K, double B, const double *raw, const double *ex, double y, double *ld)
{
    if (!(y >= -B && y <= B)) {
        *ld = 0;
        return y;
    }
    double p[SF_NSF_MAX_BINS], cw[SF_NSF_MAX_BINS + 1], ch[SF_NSF_MAX_BINS + 1], dk, dk1;
    sf_rqs_knots(K, B, raw, ex, p, cw);
    sf_rqs_knots(K, B, raw + K, ex ? ex + K : NULL, p, ch);
    const int k = sf_rqs_bin(K, ch, y);
    sf_rqs_derivs(K, raw, ex, k, &dk, &dk1);
    const double w = cw[k + 1] - cw[k], h = ch[k + 1] - ch[k], s = h / w;
    const double dy = y - ch[k], e = dk + dk1 - 2 * s;
    const double a = h * (s - dk) + dy * e, b = h * dk - dy * e, c = -s * dy;
    double disc = b * b - 4 * a * c;
    disc = disc > 0 ? disc : 0;
    double t = 2 * c / (-b - sqrt(disc));
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    const double tt1 = t * (1 - t), den = s + e * tt1;
    const double P = dk1 * t * t + 2 * s * tt1 + dk * (1 - t) * (1 - t);
    *ld = sf_rqs_log(ex, s * s * P / (den * den));
    return cw[k] + t * w;
}

/* Forward with gradients.  Given gy = dL/dy and gl = dL/d(log dy/dx),
 * writes graw[0..3K-1) = dL/draw and *gx = dL/dx (through y and log dy/dx);
 * returns y and sets *ld.  Outside [-B, B]: graw = 0, *gx = gy. */
static inline double sf_rqs_forward_grad_ex(int K, double B, const double *raw, const double *ex, double x, double gy,
                                            double gl, double *ld, double *graw, double *gx)
{
    for (int i = 0; i < 3 * K - 1; i++) graw[i] = 0;
    if (!(x >= -B && x <= B)) {
        *ld = 0;
        *gx = gy;
        return x;
    }
    double pw[SF_NSF_MAX_BINS], ph[SF_NSF_MAX_BINS], cw[SF_NSF_MAX_BINS + 1], ch[SF_NSF_MAX_BINS + 1], dk, dk1;
    sf_rqs_knots(K, B, raw, ex, pw, cw);
    sf_rqs_knots(K, B, raw + K, ex ? ex + K : NULL, ph, ch);
    const int k = sf_rqs_bin(K, cw, x);
    sf_rqs_derivs(K, raw, ex, k, &dk, &dk1);
    const double w = cw[k + 1] - cw[k], h = ch[k + 1] - ch[k], s = h / w;
    double t = (x - cw[k]) / w;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    const double t1 = 1 - t, tt1 = t * t1, e = dk + dk1 - 2 * s;
    const double den = s + e * tt1, num = h * (s * t * t + dk * tt1), R = num / den;
    const double P = dk1 * t * t + 2 * s * tt1 + dk * t1 * t1;
    *ld = sf_rqs_log(ex, s * s * P / (den * den));
    /* partials in (t, s, h, d_k, d_k+1) */
    const double q = 1 - 2 * t;
    const double dR_h = (s * t * t + dk * tt1) / den;
    const double dR_s = (h * t * t - R * (1 - 2 * tt1)) / den;
    const double dR_dk = tt1 * (h - R) / den, dR_dk1 = -R * tt1 / den;
    const double dR_t = (h * (2 * s * t + dk * q) - R * e * q) / den;
    const double dL_s = 2 / s + 2 * tt1 / P - 2 * (1 - 2 * tt1) / den;
    const double dL_dk = t1 * t1 / P - 2 * tt1 / den, dL_dk1 = t * t / P - 2 * tt1 / den;
    const double dL_t = (2 * dk1 * t + 2 * s * q - 2 * dk * t1) / P - 2 * e * q / den;
    const double Gs = gy * dR_s + gl * dL_s, Gt = gy * dR_t + gl * dL_t;
    const double Gdk = gy * dR_dk + gl * dL_dk, Gdk1 = gy * dR_dk1 + gl * dL_dk1;
    /* s = h / w, t = (x - x_k) / w */
    *gx = Gt / w;
    const double Gw = -(Gt * t + Gs * s) / w, Gh = gy * dR_h + Gs / w;
    /* knots: x_k -> -Gt/w - Gw (from x_k and w = x_{k+1} - x_k), x_{k+1} -> Gw;
     * y_k -> gy - Gh, y_{k+1} -> Gh.  x_0, x_K, y_0, y_K are constants. */
    double Gcw[2] = {-Gt / w - Gw, Gw}, Gch[2] = {gy - Gh, Gh};
    for (int side = 0; side < 2; side++) {
        const double *pp = side ? ph : pw;
        const double *G = side ? Gch : Gcw;
        double *gr = graw + side * K;
        /* dL/dwn_i = 2B sum_{j=i+1}^{K-1} dL/dc_j with only j = k, k+1 nonzero */
        double gi[SF_NSF_MAX_BINS], dot = 0;
        const double sc = 2 * B * (1 - SF_NSF_MIN_BIN * K);
        for (int i = 0; i < K; i++) {
            double v = 0;
            if (k >= 1 && k <= K - 1 && k > i) v += G[0];
            if (k + 1 <= K - 1 && k + 1 > i) v += G[1];
            gi[i] = sc * v;
            dot += pp[i] * gi[i];
        }
        for (int i = 0; i < K; i++) gr[i] = pp[i] * (gi[i] - dot);
    }
    if (k > 0) graw[2 * K + k - 1] = Gdk * sf_rqs_deriv_slope(K, raw, ex, k);
    if (k < K - 1) graw[2 * K + k] = Gdk1 * sf_rqs_deriv_slope(K, raw, ex, k + 1);
    return ch[k] + R;
}

/* The same without precomputed exponentials (all in double from raw). */
static inline double sf_rqs_forward(int K, double B, const double *raw, double x, double *ld)
{
    return sf_rqs_forward_ex(K, B, raw, NULL, x, ld);
}
static inline double sf_rqs_inverse(int K, double B, const double *raw, double y, double *ld)
{
    return sf_rqs_inverse_ex(K, B, raw, NULL, y, ld);
}
static inline double sf_rqs_forward_grad(int K, double B, const double *raw, double x, double gy, double gl, double *ld,
                                         double *graw, double *gx)
{
    return sf_rqs_forward_grad_ex(K, B, raw, NULL, x, gy, gl, ld, graw, gx);
}

#endif
