/* Fused four-direction selective scan for d_state = 1 (every published VMamba v2 checkpoint).
 *
 * One pass does what the eager path needs ~12 for: the dt projection (dt_low @ W_dt, rank R),
 * its bias and softplus, the decay exp(dt * A), the recurrence h = a * h + dt * B * u, the output
 * contraction C * h, the direction merge and the skip term. Forward only (inference); autograd
 * uses the PyTorch path.
 *
 * Layout: the per-position projections come straight from x_proj's matrix product, (B, L, 4, R+2)
 * = (dt_low[R], B, C) per direction, so nothing is permuted or copied before the call. Channels
 * are processed in tiles of TILE: a tile's state, dt and the R x TILE slice of W_dt stay in
 * registers / L1 while one direction walks all L positions; the output row of a position is
 * written by direction 0 (skip term included) and accumulated by the other three.
 *
 * Work on channels [d0, d1) only, so callers may split channels across threads; every write stays
 * inside that range. Built with OpenMP (linked to the runtime PyTorch loaded, so its worker threads
 * are the ones that run this), an entry point splits its own work over n_threads. The loops over a tile's channels are written for the vectoriser: exp and
 * softplus are inline polynomials (within 3 ulp of float32 libm) rather than libm calls, so the
 * loops need no -ffast-math and compile to straight SIMD code with any C99 compiler. u is read as
 * float32 or as bfloat16 (two entry points).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TILE 32  /* channels per tile */
#define PBLOCK 8 /* positions per block of the dt projection */

/* exp(x) for float x <= 0 (both callers' arguments are), vectorisable: x = n ln2 + r,
   |r| <= ln2/2, e^r by its Taylor series to r^7 (relative error < 2e-8 on that interval), 2^n put
   into the exponent bits. Inputs below -87 give ~1e-38 instead of a denormal or zero: as a decay
   factor that is the same thing. */
static inline float exp_approx(float x) {
    x = (-87.0f > x) ? -87.0f : x;
    const float n = nearbyintf(x * 1.44269504088896341f);
    const float r = fmaf(n, 2.12194440e-4f, fmaf(n, -0.693359375f, x)); /* x - n ln2, two parts */
    float p = 1.98412698e-4f;                                               /* 1/7! */
    p = fmaf(p, r, 1.38888889e-3f);
    p = fmaf(p, r, 8.33333333e-3f);
    p = fmaf(p, r, 4.16666667e-2f);
    p = fmaf(p, r, 1.66666667e-1f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

/* softplus(z) = max(z, 0) + log1p(w), w = exp(-|z|) in (0, 1]; log1p(w) = 2 atanh(s) with
   s = w / (2 + w) in (0, 1/3], an odd series that needs no cancellation-prone 1 + w (to s^13:
   the next term is below 1.5e-8 of the sum). */
static inline float softplus_approx(float z) {
    const float w = exp_approx(-fabsf(z));
    const float s = w / (2.0f + w), s2 = s * s;
    float q = 1.0f / 13.0f;
    q = fmaf(q, s2, 1.0f / 11.0f);
    q = fmaf(q, s2, 1.0f / 9.0f);
    q = fmaf(q, s2, 1.0f / 7.0f);
    q = fmaf(q, s2, 1.0f / 5.0f);
    q = fmaf(q, s2, 1.0f / 3.0f);
    q = fmaf(q, s2, 1.0f);
    return (z > 0.0f ? z : 0.0f) + 2.0f * s * q;
}

static inline float bf16_to_float(uint16_t v) {
    union { uint32_t i; float f; } bits = {.i = (uint32_t)v << 16};
    return bits.f;
}

/* x rounded to the nearest bfloat16 (ties to even), as a float: a bfloat16 model's dt projection
   produces bfloat16 values, and the scan must see the same numbers. */
static inline float round_bf16(float x) {
    union { float f; uint32_t i; } bits = {.f = x};
    bits.i = (bits.i + 0x7FFFu + ((bits.i >> 16) & 1u)) & 0xFFFF0000u;
    return bits.f;
}

/* The positions direction k visits, one after the other: 0 row-major, 1 column-major, 2 and 3 the
   same reversed. Kept as (row, col) and stepped, so no division per step. */
typedef struct { int64_t row, col, H, W, k; } walker;

static inline walker walk_start(int64_t k, int64_t H, int64_t W) {
    walker w = {0, 0, H, W, k};
    if (k >= 2) {
        w.row = H - 1;
        w.col = W - 1;
    }
    return w;
}

static inline int64_t walk_next(walker *w) {
    const int64_t p = w->row * w->W + w->col;
    const int64_t inner_max = (w->k & 1) ? w->H - 1 : w->W - 1;
    int64_t *inner = (w->k & 1) ? &w->row : &w->col, *outer = (w->k & 1) ? &w->col : &w->row;
    if (w->k < 2) {
        if (*inner == inner_max) { *inner = 0; ++*outer; } else ++*inner;
    } else {
        if (*inner == 0) { *inner = inner_max; --*outer; } else --*inner;
    }
    return p;
}

/* One direction k of one image over channels [c, c + n), n <= TILE. `first` marks direction 0,
   which writes the output rows (skip term included) instead of accumulating into them. Called
   with n == TILE (a constant after inlining, so the channel loops become fixed SIMD code) and once
   with the remainder. U_T is the element type of u, U_LOAD reads one as float, DT_ROUND rounds the
   dt projection to the model's precision.
   Positions go in blocks of PBLOCK: the block's dt projection is a small matrix product whose
   PBLOCK x TILE accumulators are independent (a single row's R-long chain of multiply-adds would
   wait on its own latency), then the recurrence walks the block's positions one by one. */
#define DEFINE_DIRECTION(NAME, U_T, U_LOAD, DT_ROUND)                                                     \
    static inline void NAME(const U_T *u, const float *xdbl, const float *wk, const float *biask,         \
                            const float *Ak, const float *Dsum, float *y, int64_t H, int64_t W,          \
                            int64_t D, int64_t R, int64_t k, int64_t c, int64_t n, int first) {          \
        const int64_t L = H * W, stride = 4 * (R + 2);                                                    \
        float h[TILE], bias[TILE], A[TILE], skip[TILE];                                                 \
        for (int64_t i = 0; i < n; ++i) {                                                                 \
            h[i] = 0.f;                                                                                   \
            bias[i] = biask[c + i];                                                                       \
            A[i] = Ak[c + i];                                                                             \
            skip[i] = Dsum[c + i];                                                                        \
        }                                                                                                 \
        walker walk = walk_start(k, H, W);                                                                \
        for (int64_t t0 = 0; t0 < L; t0 += PBLOCK) {                                                      \
            const int64_t np = L - t0 < PBLOCK ? L - t0 : PBLOCK;                                         \
            int64_t pos[PBLOCK];                                                                          \
            const float *xd[PBLOCK];                                                                      \
            for (int64_t j = 0; j < PBLOCK; ++j) { /* past the end: repeat the last position, unused */  \
                pos[j] = j < np ? walk_next(&walk) : pos[j - 1];                                          \
                xd[j] = xdbl + pos[j] * stride + k * (R + 2);                                             \
            }                                                                                             \
            float z[PBLOCK][TILE];                                                                        \
            for (int64_t j = 0; j < PBLOCK; ++j)                                                          \
                for (int64_t i = 0; i < n; ++i) z[j][i] = 0.f;                                            \
            for (int64_t r = 0; r < R; ++r) {                                                             \
                const float *wr = wk + r * D + c;                                                         \
                for (int64_t j = 0; j < PBLOCK; ++j) {                                                    \
                    const float dl = xd[j][r];                                                            \
                    for (int64_t i = 0; i < n; ++i) z[j][i] = fmaf(dl, wr[i], z[j][i]);                   \
                }                                                                                         \
            }                                                                                             \
            for (int64_t j = 0; j < np; ++j) {                                                            \
                const U_T *up = u + pos[j] * D + c;                                                       \
                float *yp = y + pos[j] * D + c;                                                           \
                const float bb = xd[j][R], cc = xd[j][R + 1];                                             \
                float ui[TILE];                                                                           \
                for (int64_t i = 0; i < n; ++i) {                                                         \
                    ui[i] = U_LOAD(up[i]);                                                                \
                    const float dt = softplus_approx(DT_ROUND(z[j][i]) + bias[i]);                        \
                    h[i] = exp_approx(dt * A[i]) * h[i] + dt * bb * ui[i];                                \
                }                                                                                         \
                if (first)                                                                                \
                    for (int64_t i = 0; i < n; ++i) yp[i] = fmaf(cc, h[i], skip[i] * ui[i]);              \
                else                                                                                      \
                    for (int64_t i = 0; i < n; ++i) yp[i] = fmaf(cc, h[i], yp[i]);                        \
            }                                                                                             \
        }                                                                                                 \
    }

#define AS_IS(v) (v)
DEFINE_DIRECTION(direction_f32, float, AS_IS, AS_IS)
DEFINE_DIRECTION(direction_bf16, uint16_t, bf16_to_float, round_bf16)

/* The whole scan over channels [d0, d1). Shapes (all contiguous):
     u     (B, L, D)           the scan input (after the depthwise conv and SiLU)
     xdbl  (B, L, 4, R + 2)    x_proj's output: dt_low[R], B, C per position and direction
     w_dt  (4, R, D)           the dt projection, channels contiguous
     bias  (4, D)              dt bias;  A (4, D) = -exp(A_logs);  Dsum (D) the four skip weights summed
     y     (B, L, D)           output, float32 */
#define DEFINE_SCAN(NAME, U_T, DIRECTION)                                                                  \
    void NAME(const U_T *u, const float *xdbl, const float *w_dt, const float *bias, const float *A,      \
              const float *Dsum, float *y, int64_t B, int64_t H, int64_t W, int64_t D, int64_t R,         \
              int64_t d0, int64_t d1, int64_t n_threads) {                                                 \
        const int64_t L = H * W, tiles = (d1 - d0 + TILE - 1) / TILE;                                      \
        (void)n_threads;                                                                                   \
        _Pragma("omp parallel for schedule(static) num_threads((int)n_threads) if (n_threads > 1)")        \
        for (int64_t item = 0; item < B * tiles; ++item) {                                                 \
            const int64_t b = item / tiles, c = d0 + (item % tiles) * TILE;                                \
            const int64_t n = d1 - c < TILE ? d1 - c : TILE;                                               \
            const U_T *ub = u + b * L * D;                                                                 \
            const float *xb = xdbl + b * L * 4 * (R + 2);                                                  \
            float *yb = y + b * L * D;                                                                     \
            for (int64_t k = 0; k < 4; ++k) {                                                              \
                const float *wk = w_dt + k * R * D, *bk = bias + k * D, *ak = A + k * D;                   \
                if (n == TILE)                                                                             \
                    DIRECTION(ub, xb, wk, bk, ak, Dsum, yb, H, W, D, R, k, c, TILE, k == 0);               \
                else                                                                                       \
                    DIRECTION(ub, xb, wk, bk, ak, Dsum, yb, H, W, D, R, k, c, n, k == 0);                  \
            }                                                                                              \
        }                                                                                                  \
    }

/* 1 when built with OpenMP: the entry points then split their (image, channel tile) items over
   n_threads threads of the OpenMP runtime PyTorch itself uses; 0: they run on the calling thread
   and the caller splits channel ranges over its own threads. */
int ss2d_scan_uses_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

DEFINE_SCAN(ss2d_scan_dstate1, float, direction_f32)
DEFINE_SCAN(ss2d_scan_dstate1_bf16, uint16_t, direction_bf16)
