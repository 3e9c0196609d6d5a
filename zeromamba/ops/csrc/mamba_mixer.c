/* CPU kernels for the Mamba mixer of Vim: the selective scan for any state size and the
 * depthwise causal conv1d, both token-major (batch, L, E) so no transposes are needed.
 *
 * Each call works on channels [e0, e1) only, so the caller splits channels over threads and every
 * write of one call stays inside its range. The inner loops run over contiguous channels and are
 * written for the vectoriser: exp is an inline polynomial (no libm call, no -ffast-math needed).
 * Forward only; autograd uses the PyTorch path.
 */
#include <math.h>
#include <stdint.h>

#define TILE 32     /* channels per tile: the state of one tile, TILE x N floats, stays in L1 */
#define MAX_STATE 256

/* e^x in float for x in [-87, 88] (clamped): x = k ln2 + r with |r| <= ln2/2 (k rounded with the
   1.5 * 2^23 trick, valid in the default rounding mode), e^r by a degree-7 Taylor polynomial
   (relative error below 2e-8 there), 2^k written into the exponent bits. */
static inline float fast_exp(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    const float k = fmaf(x, 1.44269504088896341f, shifter) - shifter;
    const float r = fmaf(k, -1.428606765330187e-06f, fmaf(k, -0.693145751953125f, x)); /* ln2 in two parts */
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    union {
        int32_t i;
        float f;
    } two_k = {.i = ((int32_t)k + 127) << 23};
    return p * two_k.f;
}

/* softplus(v) = log(1 + e^v) = max(v, 0) + log1p(w) with w = e^-|v| in (0, 1]. log1p(w) is
   2 atanh(s), s = w / (2 + w) in (0, 1/3], summed as an odd series in s (relative error below
   1e-9): no 1 + w is formed, so tiny w keeps its precision. */
static inline float softplus(float v) {
    const float w = fast_exp(-fabsf(v));
    const float s = w / (2.0f + w), s2 = s * s;
    float q = 1.0f / 17.0f;
    q = fmaf(q, s2, 1.0f / 15.0f);
    q = fmaf(q, s2, 1.0f / 13.0f);
    q = fmaf(q, s2, 1.0f / 11.0f);
    q = fmaf(q, s2, 1.0f / 9.0f);
    q = fmaf(q, s2, 1.0f / 7.0f);
    q = fmaf(q, s2, 1.0f / 5.0f);
    q = fmaf(q, s2, 1.0f / 3.0f);
    q = fmaf(q, s2, 1.0f);
    return (v > 0.0f ? v : 0.0f) + 2.0f * s * q;
}

static inline float silu_f(float v) { return v / (1.0f + fast_exp(-v)); }

/* One step of one full tile: TILE channels, every state n. Constant trip counts and restrict
   pointers let the compiler emit straight SIMD code without aliasing checks. */
static inline void scan_tile_step(const float *restrict dt, const float *restrict dtx, const float *restrict At,
                                  const float *restrict Bt, const float *restrict Ct, float *restrict h,
                                  float *restrict acc, int64_t N) {
    for (int64_t e = 0; e < TILE; ++e) acc[e] = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
        const float Bn = Bt[n], Cn = Ct[n];
        const float *restrict An = At + n * TILE;
        float *restrict hn = h + n * TILE;
        for (int64_t e = 0; e < TILE; ++e) {
            const float s = fmaf(fast_exp(dt[e] * An[e]), hn[e], dtx[e] * Bn);
            hn[e] = s;
            acc[e] = fmaf(s, Cn, acc[e]);
        }
    }
}

/* One direction of the selective scan on channels [e0, e1):
 *   dt_t = softplus(dt_raw_t + dt_bias)                    (softplus when do_softplus)
 *   h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t      (per channel e and state n)
 *   y_t = (<h_t, C_t> + D * x_t) * silu(z_t)               (the gate when z is not NULL)
 * x, dt_raw and z are (batch, L, E) with row strides x_stride, dt_stride, z_stride (they may be
 * views into wider tensors); y is contiguous (batch, L, E). B and C are (batch, L, N) rows of stride
 * bc_stride. At is A transposed, (N, E); dt_bias may be NULL. reverse scans from the last position
 * to the first. Returns -1 when N is larger than the kernel supports. */
int mamba_scan_f32(const float *x, int64_t x_stride, const float *dt_raw, int64_t dt_stride, const float *dt_bias,
                   int do_softplus, const float *Bm, const float *Cm, int64_t bc_stride, const float *At,
                   const float *Dskip, const float *z, int64_t z_stride, float *y, int64_t batch, int64_t L,
                   int64_t E, int64_t N, int64_t e0, int64_t e1, int reverse) {
    if (N > MAX_STATE) return -1;
    /* the tile's state, decay rates and per-step inputs, padded to TILE channels: a padded channel
       has dt = 0 and x = 0, so its state stays 0 and nothing outside [e0, e1) is read or written */
    float h[MAX_STATE * TILE], A_tile[MAX_STATE * TILE];
    float bias_tile[TILE], dt_tile[TILE], dtx[TILE], acc[TILE];
    for (int64_t c0 = e0; c0 < e1; c0 += TILE) {
        const int64_t width = (e1 - c0) < TILE ? (e1 - c0) : TILE;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t e = 0; e < TILE; ++e) A_tile[n * TILE + e] = e < width ? At[n * E + c0 + e] : 0.0f;
        for (int64_t e = 0; e < TILE; ++e) bias_tile[e] = (dt_bias && e < width) ? dt_bias[c0 + e] : 0.0f;
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t i = 0; i < N * TILE; ++i) h[i] = 0.0f;
            for (int64_t step = 0; step < L; ++step) {
                const int64_t t = reverse ? L - 1 - step : step;
                const int64_t row = b * L + t;
                const float *xt = x + row * x_stride + c0;
                const float *dtt = dt_raw + row * dt_stride + c0;
                for (int64_t e = 0; e < width; ++e) {
                    const float v = dtt[e] + bias_tile[e];
                    dt_tile[e] = do_softplus ? softplus(v) : v;
                    dtx[e] = dt_tile[e] * xt[e];
                }
                for (int64_t e = width; e < TILE; ++e) dt_tile[e] = dtx[e] = 0.0f;
                scan_tile_step(dt_tile, dtx, A_tile, Bm + row * bc_stride, Cm + row * bc_stride, h, acc, N);
                float *yt = y + row * E + c0;
                if (z) {
                    const float *zt = z + row * z_stride + c0;
                    for (int64_t e = 0; e < width; ++e) yt[e] = (acc[e] + Dskip[c0 + e] * xt[e]) * silu_f(zt[e]);
                } else {
                    for (int64_t e = 0; e < width; ++e) yt[e] = acc[e] + Dskip[c0 + e] * xt[e];
                }
            }
        }
    }
    return 0;
}

/* Depthwise causal conv1d (kernel K) on channels [e0, e1), optionally followed by SiLU:
 *   forward:  y_t = bias + sum_k w_k x_{t-K+1+k}      (zeros before t = 0)
 *   reverse:  y_t = bias + sum_k w_k x_{t+K-1-k}      (zeros after t = L - 1)
 * the reverse form is the causal conv of the reversed sequence, reversed back. x is (batch, L, E)
 * with row stride x_stride, Wt is the weight transposed, (K, E); bias may be NULL; y is
 * contiguous (batch, L, E). */
void causal_conv1d_f32(const float *x, int64_t x_stride, const float *Wt, const float *bias, float *y,
                       int64_t batch, int64_t L, int64_t E, int64_t K, int64_t e0, int64_t e1, int reverse,
                       int apply_silu) {
    const int64_t width = e1 - e0;
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < L; ++t) {
            float *yt = y + (b * L + t) * E + e0;
            for (int64_t e = 0; e < width; ++e) yt[e] = bias ? bias[e0 + e] : 0.0f;
            for (int64_t k = 0; k < K; ++k) {
                const int64_t src = reverse ? t + (K - 1 - k) : t - (K - 1 - k);
                if (src < 0 || src >= L) continue;
                const float *xs = x + (b * L + src) * x_stride + e0;
                const float *wk = Wt + k * E + e0;
                for (int64_t e = 0; e < width; ++e) yt[e] += wk[e] * xs[e];
            }
            if (apply_silu) {
                for (int64_t e = 0; e < width; ++e) yt[e] = silu_f(yt[e]);
            }
        }
    }
}
