/* CPU kernels for the Mamba mixer of Vim: the selective scan for any state size and the
 * depthwise causal conv1d, both token-major (batch, L, E) so no transposes are needed.
 *
 * Each call works on channels [e0, e1) only, and every write of one call stays inside its range.
 * The *_threads entry points split the range over n_threads threads themselves: built with OpenMP
 * (linked to the runtime PyTorch loaded), those are PyTorch's own worker threads, the ones its matrix
 * products just ran on, so nothing competes with them for the cores (a separate pool of threads did:
 * the OpenMP workers still spinning after a product took the cores from it, which made the kernels
 * 1.3-1.6x slower inside the model than alone). Without OpenMP they run the ranges one by one.
 * The channels go in tiles of ZM_NV vectors of zm_simd.h (explicit SIMD: the same code at every
 * instruction set, no -ffast-math, no libm).
 * Forward only; autograd uses the PyTorch path.
 *
 * Arithmetic of the scan per channel and position (the figure benchmarks/scan_kernel.py sets
 * against the machine's peak): per state 16 operations (the decay 2^(dt * A log2 e) 13, the
 * recurrence 2, the output 1), plus 1 bias add, 23 for softplus, 1 for dt * x, 1 for the skip
 * term and 18 for the SiLU gate: 16 N + 44, of which 7 N + 22 are multiply-adds (two operations
 * each without FMA).
 */

/* With AVX2's 16 vector registers GCC spills this kernel's chains less when it schedules before
   register allocation, minding the pressure (3-7% faster at x86-64-v3 on Zen 4; at SSE levels 4%
   slower, so not there). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX__) && !defined(__AVX512F__)
#pragma GCC optimize("schedule-insns", "sched-pressure")
#endif
#include "zm_simd.h"

#define MAX_STATE 256
#ifndef ZM_NV
#define ZM_NV 2 /* vectors per channel tile */
#endif
#define TILE (ZM_NV * ZM_LANES)
/* states whose decays are computed together (batched, see zm_simd.h): 8 vectors with 32 vector
   registers, 4 with 16 (more would spill more than the interleaving gains) */
#if ZM_LANES >= 16 || defined(__aarch64__)
#define GROUP (8 / ZM_NV)
#else
#define GROUP (4 / ZM_NV)
#endif

#define UNROLL _Pragma("GCC unroll 16")

/* n <= TILE floats to and from a tile of vectors; lanes past n read as 0 and are not written */
static inline void load_part(const float *p, int64_t n, vf *out) {
    if (n == TILE) {
        UNROLL for (int q = 0; q < ZM_NV; ++q) out[q] = load(p + q * ZM_LANES);
    } else {
        float buf[TILE] = {0};
        memcpy(buf, p, (size_t)n * sizeof(float));
        UNROLL for (int q = 0; q < ZM_NV; ++q) out[q] = load(buf + q * ZM_LANES);
    }
}

static inline void store_part(float *p, int64_t n, const vf *v) {
    if (n == TILE) {
        UNROLL for (int q = 0; q < ZM_NV; ++q) store(p + q * ZM_LANES, v[q]);
    } else {
        float buf[TILE];
        UNROLL for (int q = 0; q < ZM_NV; ++q) store(buf + q * ZM_LANES, v[q]);
        memcpy(p, buf, (size_t)n * sizeof(float));
    }
}

/* Rows are fetched AHEAD steps before their turn: one step of a tile (N states) is more work
   than the processor's out-of-order window holds, so without it each row's first touch would
   wait for memory with nothing else in flight */
#define AHEAD 2

static inline void prefetch_part(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

/* One direction of the selective scan on channels [e0, e1):
 *   dt_t = softplus(dt_raw_t + dt_bias)                    (softplus when do_softplus)
 *   h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t      (per channel e and state n)
 *   y_t = (<h_t, C_t> + D * x_t) * silu(z_t)               (the gate when z is not NULL)
 * x, dt_raw and z are (batch, L, E) with row strides x_stride, dt_stride, z_stride (they may be
 * views into wider tensors); y is contiguous (batch, L, E). B and C are (batch, L, N) rows of stride
 * bc_stride. At is A transposed, (N, E); dt_bias may be NULL. reverse scans from the last position
 * to the first. A tile's state, N x TILE floats, stays in L1. Returns -1 when N is larger than the
 * kernel supports. */
int mamba_scan_f32(const float *x, int64_t x_stride, const float *dt_raw, int64_t dt_stride, const float *dt_bias,
                   int do_softplus, const float *Bm, const float *Cm, int64_t bc_stride, const float *At,
                   const float *Dskip, const float *z, int64_t z_stride, float *y, int64_t batch, int64_t L,
                   int64_t E, int64_t N, int64_t e0, int64_t e1, int reverse) {
    if (N > MAX_STATE) return -1;
    /* padded channels have dt = x = 0: their state stays 0, and nothing outside [e0, e1) is
       read or written */
    vf h[MAX_STATE][ZM_NV], a2[MAX_STATE + GROUP][ZM_NV];
    float pad[TILE] = {0};
    for (int64_t c0 = e0; c0 < e1; c0 += TILE) {
        const int64_t n_ch = (e1 - c0) < TILE ? (e1 - c0) : TILE;
        vf bias[ZM_NV], skip[ZM_NV];
        for (int64_t n = 0; n < MAX_STATE; ++n) {
            if (n < N) load_part(At + n * E + c0, n_ch, a2[n]);
            UNROLL for (int q = 0; q < ZM_NV; ++q) a2[n][q] = n < N ? a2[n][q] * ZM_LOG2E : splat(0.0f);
            if (n >= N && n % GROUP == 0) break; /* rows up to the next multiple of GROUP are set */
        }
        load_part(dt_bias ? dt_bias + c0 : pad, dt_bias ? n_ch : TILE, bias);
        load_part(Dskip + c0, n_ch, skip);
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t n = 0; n < N; ++n) UNROLL for (int q = 0; q < ZM_NV; ++q) h[n][q] = splat(0.0f);
            for (int64_t step = 0; step < L; ++step) {
                const int64_t row = b * L + (reverse ? L - 1 - step : step);
                if (step + AHEAD < L) { /* a step is longer than the out-of-order window: fetch ahead */
                    const int64_t next = row + (reverse ? -AHEAD : AHEAD);
                    prefetch_part(x + next * x_stride + c0, n_ch);
                    prefetch_part(dt_raw + next * dt_stride + c0, n_ch);
                    if (z) prefetch_part(z + next * z_stride + c0, n_ch);
                    __builtin_prefetch(Bm + next * bc_stride);
                    __builtin_prefetch(Cm + next * bc_stride);
                }
                const float *Bt = Bm + row * bc_stride, *Ct = Cm + row * bc_stride;
                vf xt[ZM_NV], dt[ZM_NV], dtx[ZM_NV], acc[ZM_NV];
                load_part(x + row * x_stride + c0, n_ch, xt);
                load_part(dt_raw + row * dt_stride + c0, n_ch, dt);
                UNROLL for (int q = 0; q < ZM_NV; ++q) dt[q] = dt[q] + bias[q];
                if (do_softplus) softplus_n(dt, ZM_NV);
                UNROLL for (int q = 0; q < ZM_NV; ++q) {
                    dtx[q] = dt[q] * xt[q];
                    acc[q] = splat(0.0f);
                }
                /* the decays of GROUP states at a time, batched (zm_simd.h), then their recurrences;
                   a2's rows past N are 0, so a last partial group computes harmless decays of 1 */
                for (int64_t n0 = 0; n0 < N; n0 += GROUP) {
                    vf a[GROUP * ZM_NV];
                    UNROLL for (int g = 0; g < GROUP; ++g) UNROLL for (int q = 0; q < ZM_NV; ++q)
                        a[g * ZM_NV + q] = dt[q] * a2[n0 + g][q];
                    exp2_n(a, GROUP * ZM_NV);
                    UNROLL for (int g = 0; g < GROUP; ++g) {
                        const int64_t n = n0 + g;
                        if (n >= N) break;
                        const vf Bn = splat(Bt[n]), Cn = splat(Ct[n]);
                        UNROLL for (int q = 0; q < ZM_NV; ++q) {
                            const vf s = fma_v(a[g * ZM_NV + q], h[n][q], dtx[q] * Bn);
                            h[n][q] = s;
                            acc[q] = fma_v(s, Cn, acc[q]);
                        }
                    }
                }
                UNROLL for (int q = 0; q < ZM_NV; ++q) acc[q] = fma_v(skip[q], xt[q], acc[q]);
                if (z) {
                    vf zt[ZM_NV];
                    load_part(z + row * z_stride + c0, n_ch, zt);
                    silu_n(zt, ZM_NV);
                    UNROLL for (int q = 0; q < ZM_NV; ++q) acc[q] = acc[q] * zt[q];
                }
                store_part(y + row * E + c0, n_ch, acc);
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
    const float zeros[TILE] = {0};
    for (int64_t c0 = e0; c0 < e1; c0 += TILE) {
        const int64_t n_ch = (e1 - c0) < TILE ? (e1 - c0) : TILE;
        vf b0[ZM_NV];
        load_part(bias ? bias + c0 : zeros, bias ? n_ch : TILE, b0);
        for (int64_t b = 0; b < batch; ++b) {
            for (int64_t t = 0; t < L; ++t) {
                vf acc[ZM_NV];
                UNROLL for (int q = 0; q < ZM_NV; ++q) acc[q] = b0[q];
                for (int64_t k = 0; k < K; ++k) {
                    const int64_t src = reverse ? t + (K - 1 - k) : t - (K - 1 - k);
                    if (src < 0 || src >= L) continue;
                    vf w[ZM_NV], xs[ZM_NV];
                    load_part(Wt + k * E + c0, n_ch, w);
                    load_part(x + (b * L + src) * x_stride + c0, n_ch, xs);
                    UNROLL for (int q = 0; q < ZM_NV; ++q) acc[q] = fma_v(w[q], xs[q], acc[q]);
                }
                if (apply_silu) silu_n(acc, ZM_NV);
                store_part(y + (b * L + t) * E + c0, n_ch, acc);
            }
        }
    }
}

/* [a, b): the i-th of n tile-aligned parts of [e0, e1) (possibly empty) */
static inline void part_of_range(int64_t e0, int64_t e1, int64_t i, int64_t n, int64_t *a, int64_t *b) {
    const int64_t tiles = (e1 - e0 + TILE - 1) / TILE;
    *a = e0 + TILE * (tiles * i / n);
    *b = e0 + TILE * (tiles * (i + 1) / n);
    if (*a > e1) *a = e1;
    if (*b > e1) *b = e1;
}

/* mamba_scan_f32 over [e0, e1) split into n_threads parts, one a thread (see the header) */
int mamba_scan_f32_threads(const float *x, int64_t x_stride, const float *dt_raw, int64_t dt_stride,
                           const float *dt_bias, int do_softplus, const float *Bm, const float *Cm,
                           int64_t bc_stride, const float *At, const float *Dskip, const float *z,
                           int64_t z_stride, float *y, int64_t batch, int64_t L, int64_t E, int64_t N,
                           int64_t e0, int64_t e1, int reverse, int64_t n_threads) {
    int failed = 0;
    if (n_threads < 1) n_threads = 1;
    _Pragma("omp parallel for num_threads((int)n_threads) if (n_threads > 1) schedule(static, 1) reduction(| : failed)")
    for (int64_t i = 0; i < n_threads; ++i) {
        int64_t a, b;
        part_of_range(e0, e1, i, n_threads, &a, &b);
        if (a < b)
            failed |= mamba_scan_f32(x, x_stride, dt_raw, dt_stride, dt_bias, do_softplus, Bm, Cm, bc_stride, At,
                                     Dskip, z, z_stride, y, batch, L, E, N, a, b, reverse) != 0;
    }
    return failed ? -1 : 0;
}

/* causal_conv1d_f32 over [e0, e1) split into n_threads parts, one a thread (see the header) */
void causal_conv1d_f32_threads(const float *x, int64_t x_stride, const float *Wt, const float *bias, float *y,
                               int64_t batch, int64_t L, int64_t E, int64_t K, int64_t e0, int64_t e1,
                               int reverse, int apply_silu, int64_t n_threads) {
    if (n_threads < 1) n_threads = 1;
    _Pragma("omp parallel for num_threads((int)n_threads) if (n_threads > 1) schedule(static, 1)")
    for (int64_t i = 0; i < n_threads; ++i) {
        int64_t a, b;
        part_of_range(e0, e1, i, n_threads, &a, &b);
        if (a < b) causal_conv1d_f32(x, x_stride, Wt, bias, y, batch, L, E, K, a, b, reverse, apply_silu);
    }
}

/* 1 when built with OpenMP: the *_threads entry points then run on the OpenMP runtime's threads */
int mamba_mixer_uses_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* The build's vector width in floats, and whether it fuses multiply-adds (for the benchmarks) */
int mamba_mixer_vector_lanes(void) { return ZM_LANES; }
int mamba_mixer_has_fma(void) { return ZM_HAS_FMA; }
