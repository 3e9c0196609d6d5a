/* Portable SIMD for the CPU kernels: one float vector type as wide as the build's target allows,
 * and the few elementwise functions both kernels need (exp2, softplus, SiLU, bfloat16 rounding).
 *
 * Vectors are GCC / Clang vector extensions, so one source compiles to AVX-512 (16 lanes),
 * AVX / AVX2 (8), SSE or NEON (4), or, on any other target, to 4 lanes the compiler lowers as it
 * can. Arithmetic uses the extensions' operators; max and fused multiply-add, which they lack, use
 * the target's intrinsics. Nothing depends on the auto-vectoriser, -ffast-math or libm: the same
 * instructions come out of either compiler at any optimisation flags (built with
 * -ffp-contract=off, so a * b + c is never fused behind the source's back and GCC and Clang give
 * bit-identical results at the same target).
 *
 * Accuracy against float64 (each function says its range; the worst over every build, measured
 * on 16 M arguments): e^x and 2^x within 2.5 ulp, SiLU within 4 ulp, softplus within 4.5 ulp.
 * The polynomials are of the lowest degree that keeps their own error near one rounding (degree 6
 * was 20x more exact and made both kernels 3-17% slower for less than one ulp).
 */
#ifndef ZM_SIMD_H
#define ZM_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define ZM_LANES 16
#elif defined(__AVX__)
#include <immintrin.h>
#define ZM_LANES 8
#elif defined(__SSE2__)
#include <immintrin.h>
#define ZM_LANES 4
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define ZM_LANES 4
#else
#define ZM_LANES 4 /* generic vectors: the compiler lowers them to what the target has */
#endif

typedef float vf __attribute__((vector_size(4 * ZM_LANES)));
typedef uint32_t vu __attribute__((vector_size(4 * ZM_LANES)));
typedef uint16_t vh __attribute__((vector_size(2 * ZM_LANES)));

#define ZM_LOG2E 1.44269504088896341f

/* x in every lane (not (vf){0} + x: adding 0 is no identity for -0, so it would be computed) */
static inline vf splat(float x) {
#if defined(__AVX512F__)
    return _mm512_set1_ps(x);
#elif defined(__AVX__)
    return _mm256_set1_ps(x);
#elif defined(__SSE2__)
    return _mm_set1_ps(x);
#elif defined(__ARM_NEON) && defined(__aarch64__)
    return vdupq_n_f32(x);
#else
    vf v;
    for (int i = 0; i < ZM_LANES; ++i) v[i] = x;
    return v;
#endif
}

/* keep v in a register: a value used by several multiply-adds is then loaded once, where the
   compilers would otherwise fold the load into each of them (one load per use: in the scan's dt
   projection, 8 vector loads where 2 do, which made that loop bound by the load ports) */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__SSE2__) || defined(__AVX__))
#define ZM_IN_REGISTER(v) __asm__("" : "+x"(v))
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
#define ZM_IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define ZM_IN_REGISTER(v) ((void)0)
#endif

/* unaligned loads and stores (memcpy of a fixed size is one instruction) */
static inline vf load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf load_bf16(const uint16_t *p) {
    vh h;
    memcpy(&h, p, sizeof h);
    return (vf)(__builtin_convertvector(h, vu) << 16);
}

/* max(a, b); a NaN in b is returned (x86's rule, kept on every target): callers pass the value
   second so that NaN propagates through a clamp */
static inline vf vmax(vf a, vf b) {
#if defined(__AVX512F__)
    return _mm512_max_ps(a, b);
#elif defined(__AVX__)
    return _mm256_max_ps(a, b);
#elif defined(__SSE2__)
    return _mm_max_ps(a, b);
#elif defined(__ARM_NEON) && defined(__aarch64__)
    return vmaxq_f32(a, b); /* NaN in either gives NaN */
#else
    vf r;
    for (int i = 0; i < ZM_LANES; ++i) r[i] = a[i] > b[i] ? a[i] : b[i];
    return r;
#endif
}

static inline vf vmin(vf a, vf b) {
#if defined(__AVX512F__)
    return _mm512_min_ps(a, b);
#elif defined(__AVX__)
    return _mm256_min_ps(a, b);
#elif defined(__SSE2__)
    return _mm_min_ps(a, b);
#elif defined(__ARM_NEON) && defined(__aarch64__)
    return vminq_f32(a, b);
#else
    vf r;
    for (int i = 0; i < ZM_LANES; ++i) r[i] = a[i] < b[i] ? a[i] : b[i];
    return r;
#endif
}

/* a * b + c, fused (one rounding) where the target has FMA; else two operations */
static inline vf fma_v(vf a, vf b, vf c) {
#if defined(__AVX512F__)
    return _mm512_fmadd_ps(a, b, c);
#elif defined(__AVX__) && defined(__FMA__)
    return _mm256_fmadd_ps(a, b, c);
#elif defined(__SSE2__) && defined(__FMA__)
    return _mm_fmadd_ps(a, b, c);
#elif defined(__ARM_NEON) && defined(__aarch64__)
    return vfmaq_f32(c, a, b);
#else
    return a * b + c;
#endif
}

/* 1 when a * b + c above is one fused instruction (reported by the libraries, for the benchmarks) */
#if defined(__AVX512F__) || defined(__FMA__) || (defined(__ARM_NEON) && defined(__aarch64__))
#define ZM_HAS_FMA 1
#else
#define ZM_HAS_FMA 0
#endif

/* 2^n for the integer n held in the low bits of t = n + 1.5 * 2^23 (|n| <= 127): those bits,
   shifted to the exponent field, plus the exponent bias */
static inline vf pow2_from_shifted(vf t) { return (vf)(((vu)t << 23) + 0x3F800000u); }

#define ZM_SHIFTER 12582912.0f /* 1.5 * 2^23: t = x + shifter rounds x to an integer n in t's low bits */

/* The elementwise functions below work on K vectors at once (K <= ZM_BATCH, a constant once
   inlined), one operation over all K before the next: the processor then has K independent
   chains in flight, where a single vector's chain of some 40 dependent operations would keep
   its pipelines waiting on latency (measured: 1.2 of 2 operations per cycle at AVX-512 for one
   chain, 1.6 for eight). Each works in place. */
#define ZM_BATCH 32
#define ZM_INLINE static inline __attribute__((always_inline))
#define EACH(K) _Pragma("GCC unroll 32") for (int k = 0; k < (K); ++k)

/* e^x for lo <= x <= 88 (x below lo, lo >= -87, is taken as lo; NaN stays NaN), within 2.5 ulp:
   x = n ln2 + r with n = round(x log2 e) (the shifter, exact in the default rounding mode) and
   r = x - n ln2 in two parts (the first exact), |r| <= ln2 / 2; e^r by a degree-5 minimax
   polynomial (relative error 1.1e-7), 2^n put into the exponent bits. */
ZM_INLINE void exp_n(vf *x, int K, float lo) {
    vf t[ZM_BATCH], n[ZM_BATCH], r[ZM_BATCH], p[ZM_BATCH];
    EACH(K) x[k] = vmax(splat(lo), x[k]);
    EACH(K) t[k] = fma_v(x[k], splat(ZM_LOG2E), splat(ZM_SHIFTER));
    EACH(K) n[k] = t[k] - ZM_SHIFTER;
    EACH(K) r[k] = fma_v(n[k], splat(-0.693359375f), x[k]);
    EACH(K) r[k] = fma_v(n[k], splat(2.12194440e-4f), r[k]);
    EACH(K) p[k] = fma_v(splat(8.312524875e-03f), r[k], splat(4.189011320e-02f));
    EACH(K) p[k] = fma_v(p[k], r[k], splat(1.666711447e-01f));
    EACH(K) p[k] = fma_v(p[k], r[k], splat(4.999923179e-01f));
    EACH(K) p[k] = fma_v(p[k], r[k], splat(1.0f));
    EACH(K) p[k] = fma_v(p[k], r[k], splat(1.0f));
    EACH(K) x[k] = p[k] * pow2_from_shifted(t[k]);
}

/* 2^x for x <= 127 (x below -125.5 is taken as -125.5: ~1.7e-38 instead of a denormal or zero,
   which as a decay factor is the same thing; NaN stays NaN): x = n + f, n = round(x), |f| <= 1/2
   exact, 2^f by a degree-5 minimax polynomial (relative error 9e-8). One operation cheaper than
   e^x for the decay factors, whose argument dt A log2 e then carries one more rounding: a relative
   error within 1.2e-7 |dt A| (e^x's own: 6e-8 |dt A|, from rounding dt A). No denormal ever reaches
   the arithmetic here or in the functions below, which on x86 would cost a microcode assist each. */
ZM_INLINE void exp2_n(vf *x, int K) {
    vf t[ZM_BATCH], f[ZM_BATCH], p[ZM_BATCH];
    EACH(K) x[k] = vmax(splat(-125.5f), x[k]);
    EACH(K) t[k] = x[k] + ZM_SHIFTER;
    EACH(K) f[k] = x[k] - (t[k] - ZM_SHIFTER);
    EACH(K) p[k] = fma_v(splat(1.326472721e-03f), f[k], splat(9.671512650e-03f));
    EACH(K) p[k] = fma_v(p[k], f[k], splat(5.550733743e-02f));
    EACH(K) p[k] = fma_v(p[k], f[k], splat(2.402224209e-01f));
    EACH(K) p[k] = fma_v(p[k], f[k], splat(6.931469776e-01f));
    EACH(K) p[k] = fma_v(p[k], f[k], splat(1.0f));
    EACH(K) x[k] = p[k] * pow2_from_shifted(t[k]);
}

/* softplus(v) = max(v, 0) + log1p(w), w = e^-|v| in (0, 1]; log1p(w) = 2 atanh(s) with
   s = w / (2 + w) in (0, 1/3]: s times a degree-4 minimax polynomial in s^2 (relative error
   4e-9), so no cancellation-prone 1 + w is formed and a tiny w keeps its precision. Within 4.5 ulp
   for v >= -41; w is kept above e^-41 (s^2 a normal float), so below v = -41 this returns
   1.6e-18 instead of e^v, and above v = 41 it is v to within v's own rounding. */
ZM_INLINE void softplus_n(vf *v, int K) {
    vf w[ZM_BATCH], s[ZM_BATCH], s2[ZM_BATCH], q[ZM_BATCH];
    EACH(K) w[k] = (vf)((vu)v[k] | 0x80000000u);
    exp_n(w, K, -41.0f);
    EACH(K) s[k] = w[k] / (w[k] + 2.0f);
    EACH(K) s2[k] = s[k] * s[k];
    EACH(K) q[k] = fma_v(splat(2.0f * 1.408916712e-01f), s2[k], splat(2.0f * 1.398030072e-01f));
    EACH(K) q[k] = fma_v(q[k], s2[k], splat(2.0f * 2.001245469e-01f));
    EACH(K) q[k] = fma_v(q[k], s2[k], splat(2.0f * 3.333315849e-01f));
    EACH(K) q[k] = fma_v(q[k], s2[k], splat(2.0f));
    EACH(K) v[k] = fma_v(s[k], q[k], vmax(splat(0.0f), v[k]));
}

/* SiLU v * sigmoid(v) = v / (1 + e^-v), within 4 ulp (e^-v kept below e^88: beyond, the result
   is v e^-88 instead of a smaller number or -0) */
ZM_INLINE void silu_n(vf *v, int K) {
    vf e[ZM_BATCH];
    EACH(K) e[k] = vmin(splat(88.0f), -v[k]);
    exp_n(e, K, -87.0f);
    EACH(K) v[k] = v[k] / (e[k] + 1.0f);
}

/* x rounded to the nearest bfloat16 (ties to even), as a float: a bfloat16 model's dt projection
   produces bfloat16 values, and the scan must see the same numbers */
static inline vf round_bf16_v(vf x) {
    const vu bits = (vu)x;
    return (vf)((bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u);
}

#endif
