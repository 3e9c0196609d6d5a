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
 * against the machine's peak): R multiply-adds of the dt projection, 1 bias add, 23 operations for
 * softplus, 13 for the decay 2^(dt * A log2 e), 3 for the recurrence, 1 for the output (+1 for the
 * skip term in one direction of four): R + 41.25, of which R + 20 are multiply-adds (two operations
 * each without FMA); a bfloat16 model adds 5 integer operations rounding dt to bfloat16.
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */

/* Below AVX-512, x86 has 16 vector registers: too few for a block's independent chains, which GCC
   then allocates in source order and spills. Scheduling before register allocation, minding the
   pressure, made this kernel 3% (x86-64-v3) and 8% (v2) faster on Zen 4; with 32 registers it
   changes nothing. (Before any function, the headers' inline ones included.) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX512F__)
#pragma GCC optimize("schedule-insns", "sched-pressure")
#endif

#include <stdlib.h>

#include "zm_simd.h"

/* A thread's buffers start on a cache line, so that no vector load or store of a tile (TILE
   floats) straddles two lines; malloc guarantees 16 bytes (its large blocks start 16 bytes into a
   page), with which every AVX-512 access would straddle (measured on Zen 4: the first two stages,
   whose buffers stream from L2 and L3, 4-7% slower 16 bytes off a line). */
static float *alloc_lines(size_t floats) {
    void *p = NULL;
    return posix_memalign(&p, 64, floats * sizeof(float)) == 0 ? (float *)p : NULL;
}

/* A channel tile is ZM_NV vectors; the dt projection of PBLOCK positions at a time keeps
   PBLOCK x ZM_NV accumulators in registers (x86-64 has 16 vector registers below AVX-512, 32
   with it and on aarch64). Wider tiles share each position's scalar work (its walk step, loads
   and broadcasts) among more channels; 32 channels keep even the 192-channel stage at 6 tiles.
   Four positions at AVX-512: with eight, the elementwise functions' temporaries for 8 x 2 vectors
   outgrew the 32 registers and spilled (the scan ~5% slower). */
#ifndef ZM_NV
#if ZM_LANES >= 16
#define ZM_NV 2
#else
#define ZM_NV 4
#endif
#endif
#define TILE (ZM_NV * ZM_LANES)
#ifndef PBLOCK
#if ZM_LANES >= 16 || defined(__aarch64__)
#define PBLOCK 4
#else
#define PBLOCK 2
#endif
#endif

#define UNROLL _Pragma("GCC unroll 16")

/* how many positions ahead of the walk prefetch_position asks for data (8-64 measured alike) */
#ifndef AHEAD
#define AHEAD 16
#endif

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

/* A tile's n <= TILE channels of one position to and from vectors; lanes past n read as 0 and
   are not written */
static inline void load_tile_f32(const float *p, int64_t n, vf *out) {
    if (n == TILE) {
        UNROLL for (int q = 0; q < ZM_NV; ++q) out[q] = load(p + q * ZM_LANES);
    } else {
        float buf[TILE] = {0};
        memcpy(buf, p, (size_t)n * sizeof(float));
        UNROLL for (int q = 0; q < ZM_NV; ++q) out[q] = load(buf + q * ZM_LANES);
    }
}

static inline void load_tile_bf16(const uint16_t *p, int64_t n, vf *out) {
    if (n == TILE) {
        UNROLL for (int q = 0; q < ZM_NV; ++q) out[q] = load_bf16(p + q * ZM_LANES);
    } else {
        uint16_t buf[TILE] = {0};
        memcpy(buf, p, (size_t)n * sizeof(uint16_t));
        UNROLL for (int q = 0; q < ZM_NV; ++q) out[q] = load_bf16(buf + q * ZM_LANES);
    }
}

static inline void store_tile(float *p, int64_t n, const vf *v) {
    if (n == TILE) {
        UNROLL for (int q = 0; q < ZM_NV; ++q) store(p + q * ZM_LANES, v[q]);
    } else {
        float buf[TILE];
        UNROLL for (int q = 0; q < ZM_NV; ++q) store(buf + q * ZM_LANES, v[q]);
        memcpy(p, buf, (size_t)n * sizeof(float));
    }
}

/* One channel tile of one image: where its data is and its constants for the direction at hand.
   ub and yb are the tile's own buffers, (L, TILE) contiguous; wt its R x TILE slice of W_dt
   (zero-padded past its n channels); bias, a2 (A log2 e) and skip its constants. */
typedef struct {
    const float *xdbl, *wt;
    float *ub, *yb, *y;
    int64_t H, W, D, R, n;
    vf bias[ZM_NV], a2[ZM_NV], skip[ZM_NV];
} tile_job;

/* The four directions of a tile, in the order 0, 1, 3, 2: the first (row-major) reads u from the
   caller's rows and keeps it in ub, writes its output with the skip term into yb; the middle two
   (column-major) walk the buffers; the last (row-major, reversed) adds its output to yb's and
   writes the result into the caller's y. So the caller's (strided) rows are read and written once
   each, in row order, and the column-major walks stay inside the tile's few hundred kilobytes to
   few megabytes instead of jumping a whole image row per step. */
enum { FIRST, MIDDLE, LAST };

/* Ask for the data of position p, AHEAD positions before the walk gets there. The column-major
   walks and the caller's rows step a whole row at a time (W x TILE or D floats: kilobytes), which
   the hardware prefetchers, bound to a 4 KiB page, do not follow (the kernel is 1.07-1.26x faster
   with this, depending on the vector width). u_row is the position's row of u (FIRST only). */
static inline void prefetch_position(const tile_job *job, const void *u_row, size_t u_row_bytes, int64_t p,
                                     int64_t k, int stage) {
    const float *xd = job->xdbl + p * 4 * (job->R + 2) + k * (job->R + 2);
    __builtin_prefetch(xd);
    __builtin_prefetch(xd + job->R + 1);
    if (stage == FIRST) {
        __builtin_prefetch(u_row);
        __builtin_prefetch((const char *)u_row + u_row_bytes - 1);
    } else {
        __builtin_prefetch(job->ub + p * TILE);
        __builtin_prefetch(job->ub + p * TILE + TILE - 1);
        __builtin_prefetch(job->yb + p * TILE, 1);
        __builtin_prefetch(job->yb + p * TILE + TILE - 1, 1);
    }
    if (stage == LAST) {
        __builtin_prefetch(job->y + p * job->D, 1);
        __builtin_prefetch(job->y + p * job->D + job->n - 1, 1);
    }
}

/* One direction k of one tile; n is the tile's channel count (TILE or the remainder: inlined for
   each, so the full-tile path has no buffers) and stage FIRST, MIDDLE or LAST (see above). U_T is
   u's element type, LOAD_U reads a tile of it, DT_ROUND rounds the dt projection to the model's
   precision. Positions go in blocks of PBLOCK: the block's dt projection is a small matrix product
   whose PBLOCK x ZM_NV accumulators are independent (a single row's R-long chain of multiply-adds
   would wait on its own latency), then the recurrence walks the block's positions one by one. */
#define DEFINE_DIRECTION(NAME, U_T, LOAD_U, DT_ROUND)                                                    \
    static inline __attribute__((always_inline)) void NAME(const U_T *u, const tile_job *job, int64_t k, \
                                                           int64_t n, int stage) {                       \
        const int64_t H = job->H, W = job->W, L = H * W, R = job->R, D = job->D, stride = 4 * (R + 2);   \
        const float *xdbl = job->xdbl, *wt = job->wt;                                                    \
        float *ub = job->ub, *yb = job->yb;                                                              \
        vf h[ZM_NV];                                                                                     \
        UNROLL for (int q = 0; q < ZM_NV; ++q) h[q] = splat(0.0f);                                       \
        walker walk = walk_start(k, H, W), ahead = walk_start(k, H, W);                                  \
        for (int64_t t = 0; t < AHEAD && t < L; ++t) walk_next(&ahead);                                  \
        for (int64_t t0 = 0; t0 < L; t0 += PBLOCK) {                                                     \
            const int64_t np = L - t0 < PBLOCK ? L - t0 : PBLOCK;                                        \
            int64_t pos[PBLOCK];                                                                         \
            const float *xd[PBLOCK];                                                                     \
            for (int64_t j = 0; j < PBLOCK; ++j) { /* past the end: repeat the last position, unused */ \
                pos[j] = j < np ? walk_next(&walk) : pos[j - 1];                                         \
                xd[j] = xdbl + pos[j] * stride + k * (R + 2);                                            \
                if (t0 + j + AHEAD < L) {                                                                \
                    const int64_t pa = walk_next(&ahead);                                                \
                    prefetch_position(job, stage == FIRST ? u + pa * D : NULL, n * sizeof(U_T), pa, k, stage); \
                }                                                                                        \
            }                                                                                            \
            vf z[PBLOCK][ZM_NV];                                                                         \
            UNROLL for (int j = 0; j < PBLOCK; ++j) UNROLL for (int q = 0; q < ZM_NV; ++q)               \
                z[j][q] = splat(0.0f);                                                                   \
            for (int64_t r = 0; r < R; ++r) {                                                            \
                vf wr[ZM_NV];                                                                            \
                UNROLL for (int q = 0; q < ZM_NV; ++q) {                                                 \
                    wr[q] = load(wt + r * TILE + q * ZM_LANES);                                          \
                    ZM_IN_REGISTER(wr[q]);                                                               \
                }                                                                                        \
                UNROLL for (int j = 0; j < PBLOCK; ++j) {                                                \
                    const vf dl = splat(xd[j][r]);                                                       \
                    UNROLL for (int q = 0; q < ZM_NV; ++q) z[j][q] = fma_v(dl, wr[q], z[j][q]);          \
                }                                                                                        \
            }                                                                                            \
            /* the block's elementwise work, batched over its PBLOCK x ZM_NV vectors (zm_simd.h's  \
               functions interleave them), then the recurrence position by position */           \
            vf ui[PBLOCK][ZM_NV], dt[PBLOCK * ZM_NV], a[PBLOCK * ZM_NV];                                 \
            UNROLL for (int j = 0; j < PBLOCK; ++j) {                                                    \
                float *up = ub + pos[j] * TILE;                                                          \
                if (stage == FIRST) {                                                                    \
                    LOAD_U(u + pos[j] * D, n, ui[j]);                                                    \
                    if (j < np) UNROLL for (int q = 0; q < ZM_NV; ++q) store(up + q * ZM_LANES, ui[j][q]); \
                } else {                                                                                 \
                    UNROLL for (int q = 0; q < ZM_NV; ++q) ui[j][q] = load(up + q * ZM_LANES);           \
                }                                                                                        \
                UNROLL for (int q = 0; q < ZM_NV; ++q) dt[j * ZM_NV + q] = DT_ROUND(z[j][q]) + job->bias[q]; \
            }                                                                                            \
            softplus_n(dt, PBLOCK * ZM_NV);                                                              \
            UNROLL for (int j = 0; j < PBLOCK; ++j) UNROLL for (int q = 0; q < ZM_NV; ++q)               \
                a[j * ZM_NV + q] = dt[j * ZM_NV + q] * job->a2[q];                                       \
            exp2_n(a, PBLOCK * ZM_NV);                                                                   \
            UNROLL for (int j = 0; j < PBLOCK; ++j) {                                                    \
                if (j >= np) break;                                                                      \
                const vf bb = splat(xd[j][R]), cc = splat(xd[j][R + 1]);                                 \
                float *yp = yb + pos[j] * TILE;                                                          \
                vf yo[ZM_NV];                                                                            \
                UNROLL for (int q = 0; q < ZM_NV; ++q) {                                                 \
                    const vf d = dt[j * ZM_NV + q];                                                      \
                    h[q] = fma_v(a[j * ZM_NV + q], h[q], d * bb * ui[j][q]);                             \
                    const vf rest = stage == FIRST ? job->skip[q] * ui[j][q] : load(yp + q * ZM_LANES);  \
                    yo[q] = fma_v(cc, h[q], rest);                                                       \
                }                                                                                        \
                if (stage == LAST)                                                                       \
                    store_tile(job->y + pos[j] * D, n, yo);                                              \
                else                                                                                     \
                    UNROLL for (int q = 0; q < ZM_NV; ++q) store(yp + q * ZM_LANES, yo[q]);              \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
    static void NAME##_first(const U_T *u, const tile_job *job) {                                        \
        if (job->n == TILE) NAME(u, job, 0, TILE, FIRST); else NAME(u, job, 0, job->n, FIRST);          \
    }                                                                                                    \
    static void NAME##_middle(const tile_job *job, int64_t k) {                                          \
        if (job->n == TILE) NAME(NULL, job, k, TILE, MIDDLE); else NAME(NULL, job, k, job->n, MIDDLE);  \
    }                                                                                                    \
    static void NAME##_last(const tile_job *job) {                                                       \
        if (job->n == TILE) NAME(NULL, job, 2, TILE, LAST); else NAME(NULL, job, 2, job->n, LAST);      \
    }

#define AS_IS(v) (v)
DEFINE_DIRECTION(direction_f32, float, load_tile_f32, AS_IS)
DEFINE_DIRECTION(direction_bf16, uint16_t, load_tile_bf16, round_bf16_v)

/* job's constants and W_dt slice for direction k of the tile at channel c */
static void tile_direction(tile_job *job, float *wt, const float *w_dt, const float *bias, const float *A,
                           int64_t c, int64_t k) {
    const int64_t D = job->D, R = job->R, n = job->n;
    load_tile_f32(bias + k * D + c, n, job->bias);
    load_tile_f32(A + k * D + c, n, job->a2);
    UNROLL for (int q = 0; q < ZM_NV; ++q) job->a2[q] = job->a2[q] * ZM_LOG2E;
    for (int64_t r = 0; r < R; ++r) {
        vf row[ZM_NV];
        load_tile_f32(w_dt + (k * R + r) * D + c, n, row);
        UNROLL for (int q = 0; q < ZM_NV; ++q) store(wt + r * TILE + q * ZM_LANES, row[q]);
    }
}

/* The whole scan over channels [d0, d1). Shapes (all contiguous):
     u     (B, L, D)           the scan input (after the depthwise conv and SiLU), float32 or bfloat16
     xdbl  (B, L, 4, R + 2)    x_proj's output: dt_low[R], B, C per position and direction
     w_dt  (4, R, D)           the dt projection, channels contiguous
     bias  (4, D)              dt bias;  A (4, D) = -exp(A_logs);  Dsum (D) the four skip weights summed
     y     (B, L, D)           output, float32
   Work items are (image, channel tile) pairs, each on its thread's buffers (see tile_job).
   Returns 0, or -1 when the buffers could not be allocated (nothing then is written). */
#define DEFINE_SCAN(NAME, U_T, DIRECTION)                                                                 \
    int NAME(const U_T *u, const float *xdbl, const float *w_dt, const float *bias, const float *A,      \
             const float *Dsum, float *y, int64_t B, int64_t H, int64_t W, int64_t D, int64_t R,         \
             int64_t d0, int64_t d1, int64_t n_threads) {                                                \
        const int64_t L = H * W, tiles = (d1 - d0 + TILE - 1) / TILE;                                     \
        int failed = 0;                                                                                   \
        (void)n_threads;                                                                                  \
        _Pragma("omp parallel num_threads((int)n_threads) if (n_threads > 1) reduction(| : failed)")     \
        {                                                                                                 \
            float *wt = alloc_lines((size_t)(R + 2 * L) * TILE);                                          \
            failed |= wt == NULL;                                                                         \
            _Pragma("omp for schedule(static)")                                                           \
            for (int64_t item = 0; item < B * tiles; ++item) {                                            \
                if (wt == NULL) continue;                                                                 \
                const int64_t b = item / tiles, c = d0 + (item % tiles) * TILE;                           \
                tile_job job = {.xdbl = xdbl + b * L * 4 * (R + 2), .wt = wt, .ub = wt + R * TILE,        \
                                .yb = wt + (R + L) * TILE, .y = y + b * L * D + c,                        \
                                .H = H, .W = W, .D = D, .R = R, .n = d1 - c < TILE ? d1 - c : TILE};      \
                const U_T *ub = u + b * L * D + c;                                                        \
                load_tile_f32(Dsum + c, job.n, job.skip);                                                 \
                tile_direction(&job, wt, w_dt, bias, A, c, 0);                                            \
                DIRECTION##_first(ub, &job);                                                              \
                tile_direction(&job, wt, w_dt, bias, A, c, 1);                                            \
                DIRECTION##_middle(&job, 1);                                                              \
                tile_direction(&job, wt, w_dt, bias, A, c, 3);                                            \
                DIRECTION##_middle(&job, 3);                                                              \
                tile_direction(&job, wt, w_dt, bias, A, c, 2);                                            \
                DIRECTION##_last(&job);                                                                   \
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

DEFINE_SCAN(ss2d_scan_dstate1, float, direction_f32)
DEFINE_SCAN(ss2d_scan_dstate1_bf16, uint16_t, direction_bf16)
