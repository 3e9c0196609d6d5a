/* Fused four-direction selective scan for d_state = 1 (every published VMamba v2 checkpoint).
 *
 * One pass does what the eager path needs ~12 for: the dt projection (dt_low @ W_dt, rank R),
 * its bias and softplus, the decay exp(dt * A), the recurrence h = a * h + dt * B * u, the output
 * contraction C * h, the direction merge and the skip term. Forward only (inference); autograd
 * uses the PyTorch path.
 *
 * Layout: the per-position projections come straight from x_proj's matrix product, (B, L, 4, R+2)
 * = (dt_low[R], B, C) per direction, so nothing is permuted or copied before the call. Channels
 * are processed in tiles of TILE (ZM_NV vectors of zm_simd.h): a tile's state and constants stay
 * in registers and its R x TILE slice of W_dt in L1 while one direction walks all L positions;
 * the output row of a position is written by direction 0 (skip term included) and accumulated by
 * the other three.
 *
 * Work on channels [d0, d1) only, so callers may split channels across threads; every write stays
 * inside that range. Built with OpenMP (linked to the runtime PyTorch loaded, so its worker threads
 * are the ones that run this), an entry point splits its own work over n_threads. u is read as
 * float32 or as bfloat16 (two entry points).
 *
 * Arithmetic per channel, position and direction (the figure benchmarks/scan_kernel.py sets
 * against the machine's peak): R multiply-adds of the dt projection, 1 bias add, 29 for softplus,
 * 15 for the decay 2^(dt * A log2 e), 3 for the recurrence, 1 for the output (+1 skip term in
 * one direction of four), and for a bfloat16 model 4 integer operations rounding dt to bfloat16.
 */
#include <stdlib.h>

#include "zm_simd.h"

/* A channel tile is ZM_NV vectors; the dt projection of PBLOCK positions at a time keeps
   PBLOCK x ZM_NV accumulators in registers (x86-64 has 16 vector registers below AVX-512, 32
   with it and on aarch64). Wider tiles share each position's scalar work (its walk step, loads
   and broadcasts) among more channels; 32 channels keep even the 192-channel stage at 6 tiles. */
#ifndef ZM_NV
#if ZM_LANES >= 16
#define ZM_NV 2
#else
#define ZM_NV 4
#endif
#endif
#define TILE (ZM_NV * ZM_LANES)
#ifndef PBLOCK
#if ZM_LANES >= 16
#define PBLOCK 8
#elif defined(__aarch64__)
#define PBLOCK 4
#else
#define PBLOCK 2
#endif
#endif

#define UNROLL _Pragma("GCC unroll 16")

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

/* One direction k of one image over one channel tile, on the tile's own buffers: ub and yb hold
   the tile's TILE channels of every position contiguously (row p at p * TILE; lanes past the
   tile's channels are 0 in ub and ignored in yb), wt is the tile's R x TILE slice of W_dt
   (zero-padded), bias, a2 (A log2 e) and skip the tile's constants. `first` marks direction 0,
   which writes the output rows (skip term included) instead of accumulating into them. DT_ROUND
   rounds the dt projection to the model's precision.
   Positions go in blocks of PBLOCK: the block's dt projection is a small matrix product whose
   PBLOCK x ZM_NV accumulators are independent (a single row's R-long chain of multiply-adds would
   wait on its own latency), then the recurrence walks the block's positions one by one. */
#define DEFINE_DIRECTION(NAME, DT_ROUND)                                                                 \
    static void NAME(const float *ub, const float *xdbl, const float *wt, const vf *bias, const vf *a2,  \
                     const vf *skip, float *yb, int64_t H, int64_t W, int64_t R, int64_t k, int first) { \
        const int64_t L = H * W, stride = 4 * (R + 2);                                                   \
        vf h[ZM_NV];                                                                                     \
        UNROLL for (int q = 0; q < ZM_NV; ++q) h[q] = splat(0.0f);                                       \
        walker walk = walk_start(k, H, W);                                                               \
        for (int64_t t0 = 0; t0 < L; t0 += PBLOCK) {                                                     \
            const int64_t np = L - t0 < PBLOCK ? L - t0 : PBLOCK;                                        \
            int64_t pos[PBLOCK];                                                                         \
            const float *xd[PBLOCK];                                                                     \
            for (int64_t j = 0; j < PBLOCK; ++j) { /* past the end: repeat the last position, unused */ \
                pos[j] = j < np ? walk_next(&walk) : pos[j - 1];                                         \
                xd[j] = xdbl + pos[j] * stride + k * (R + 2);                                            \
            }                                                                                            \
            vf z[PBLOCK][ZM_NV];                                                                         \
            UNROLL for (int j = 0; j < PBLOCK; ++j) UNROLL for (int q = 0; q < ZM_NV; ++q)               \
                z[j][q] = splat(0.0f);                                                                   \
            for (int64_t r = 0; r < R; ++r) {                                                            \
                vf wr[ZM_NV];                                                                            \
                UNROLL for (int q = 0; q < ZM_NV; ++q) wr[q] = load(wt + r * TILE + q * ZM_LANES);       \
                UNROLL for (int j = 0; j < PBLOCK; ++j) {                                                \
                    const vf dl = splat(xd[j][r]);                                                       \
                    UNROLL for (int q = 0; q < ZM_NV; ++q) z[j][q] = fma_v(dl, wr[q], z[j][q]);          \
                }                                                                                        \
            }                                                                                            \
            UNROLL for (int j = 0; j < PBLOCK; ++j) {                                                    \
                if (j >= np) break;                                                                      \
                const vf bb = splat(xd[j][R]), cc = splat(xd[j][R + 1]);                                 \
                const float *up = ub + pos[j] * TILE;                                                    \
                float *yp = yb + pos[j] * TILE;                                                          \
                UNROLL for (int q = 0; q < ZM_NV; ++q) {                                                 \
                    const vf ui = load(up + q * ZM_LANES);                                               \
                    const vf dt = softplus_v(DT_ROUND(z[j][q]) + bias[q]);                               \
                    h[q] = fma_v(exp2_v(dt * a2[q]), h[q], dt * bb * ui);                                \
                    const vf rest = first ? skip[q] * ui : load(yp + q * ZM_LANES);                      \
                    store(yp + q * ZM_LANES, fma_v(cc, h[q], rest));                                     \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }

#define AS_IS(v) (v)
DEFINE_DIRECTION(direction_f32, AS_IS)
DEFINE_DIRECTION(direction_bf16, round_bf16_v)

static inline float f32_to_float(float v) { return v; }

static inline float bf16_to_float(uint16_t v) {
    union { uint32_t i; float f; } bits = {.i = (uint32_t)v << 16};
    return bits.f;
}

/* The whole scan over channels [d0, d1). Shapes (all contiguous):
     u     (B, L, D)           the scan input (after the depthwise conv and SiLU), float32 or bfloat16
     xdbl  (B, L, 4, R + 2)    x_proj's output: dt_low[R], B, C per position and direction
     w_dt  (4, R, D)           the dt projection, channels contiguous
     bias  (4, D)              dt bias;  A (4, D) = -exp(A_logs);  Dsum (D) the four skip weights summed
     y     (B, L, D)           output, float32
   Each (image, channel tile) item is copied into a buffer of its own, (L, TILE) contiguous: the
   four directions then walk a few hundred kilobytes to a few megabytes of contiguous memory
   instead of strided rows a whole image apart (one page per step for the column-major walks).
   Returns 0, or -1 when the buffers could not be allocated (nothing then is written). */
#define DEFINE_SCAN(NAME, U_T, TO_FLOAT, DIRECTION)                                                       \
    int NAME(const U_T *u, const float *xdbl, const float *w_dt, const float *bias, const float *A,      \
             const float *Dsum, float *y, int64_t B, int64_t H, int64_t W, int64_t D, int64_t R,         \
             int64_t d0, int64_t d1, int64_t n_threads) {                                                \
        const int64_t L = H * W, tiles = (d1 - d0 + TILE - 1) / TILE;                                     \
        int failed = 0;                                                                                   \
        (void)n_threads;                                                                                  \
        _Pragma("omp parallel num_threads((int)n_threads) if (n_threads > 1) reduction(| : failed)")     \
        {                                                                                                 \
            float *wt = malloc((size_t)(R + 2 * L) * TILE * sizeof(float));                               \
            float *ub = wt + R * TILE, *yb = ub + L * TILE;                                               \
            failed |= wt == NULL;                                                                         \
            _Pragma("omp for schedule(static)")                                                           \
            for (int64_t item = 0; item < B * tiles; ++item) {                                            \
                if (wt == NULL) continue;                                                                 \
                const int64_t b = item / tiles, c = d0 + (item % tiles) * TILE;                           \
                const int64_t n = d1 - c < TILE ? d1 - c : TILE;                                          \
                const float *xb = xdbl + b * L * 4 * (R + 2);                                             \
                float pad[TILE] = {0};                                                                    \
                vf skip[ZM_NV], bk[ZM_NV], a2[ZM_NV];                                                     \
                for (int64_t p = 0; p < L; ++p) {                                                         \
                    const U_T *row = u + (b * L + p) * D + c;                                             \
                    float *to = ub + p * TILE;                                                            \
                    for (int64_t i = 0; i < n; ++i) to[i] = TO_FLOAT(row[i]);                             \
                    for (int64_t i = n; i < TILE; ++i) to[i] = 0.0f;                                      \
                }                                                                                         \
                memcpy(pad, Dsum + c, (size_t)n * sizeof(float));                                         \
                UNROLL for (int q = 0; q < ZM_NV; ++q) skip[q] = load(pad + q * ZM_LANES);                \
                for (int64_t k = 0; k < 4; ++k) {                                                         \
                    memcpy(pad, bias + k * D + c, (size_t)n * sizeof(float));                             \
                    UNROLL for (int q = 0; q < ZM_NV; ++q) bk[q] = load(pad + q * ZM_LANES);              \
                    memcpy(pad, A + k * D + c, (size_t)n * sizeof(float));                                \
                    UNROLL for (int q = 0; q < ZM_NV; ++q) a2[q] = load(pad + q * ZM_LANES) * ZM_LOG2E;   \
                    for (int64_t r = 0; r < R; ++r)                                                       \
                        for (int64_t i = 0; i < TILE; ++i)                                                \
                            wt[r * TILE + i] = i < n ? w_dt[(k * R + r) * D + c + i] : 0.0f;              \
                    DIRECTION(ub, xb, wt, bk, a2, skip, yb, H, W, R, k, k == 0);                          \
                }                                                                                         \
                for (int64_t p = 0; p < L; ++p)                                                           \
                    memcpy(y + (b * L + p) * D + c, yb + p * TILE, (size_t)n * sizeof(float));            \
            }                                                                                             \
            free(wt);                                                                                     \
        }                                                                                                 \
        return failed ? -1 : 0;                                                                           \
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

/* The build's vector width in floats, and whether it fuses multiply-adds (for the benchmarks) */
int ss2d_scan_vector_lanes(void) { return ZM_LANES; }
int ss2d_scan_has_fma(void) { return ZM_HAS_FMA; }

DEFINE_SCAN(ss2d_scan_dstate1, float, f32_to_float, direction_f32)
DEFINE_SCAN(ss2d_scan_dstate1_bf16, uint16_t, bf16_to_float, direction_bf16)
