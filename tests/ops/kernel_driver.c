/* A command-line driver for the CPU kernels, for running them where Python cannot load them:
 * cross-compiled for another architecture and run under an emulator (qemu-user).
 *
 *   driver scan IN OUT      ss2d_scan_dstate1 (float32 u) and ss2d_scan_dstate1_bf16
 *   driver mixer IN OUT     mamba_scan_f32 and causal_conv1d_f32
 *
 * IN holds int64 sizes then float32 arrays (little-endian, as numpy's tofile writes them), OUT
 * the float32 outputs one after the other; see tests/ops/test_kernel_cross.py for the layouts.
 * Built together with ss2d_scan.c and mamba_mixer.c (one executable, no OpenMP).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ss2d_scan_dstate1(const float *u, const float *xdbl, const float *w_dt, const float *bias, const float *A,
                      const float *Dsum, float *y, int64_t B, int64_t H, int64_t W, int64_t D, int64_t R, int64_t d0,
                      int64_t d1, int64_t n_threads);
int ss2d_scan_dstate1_bf16(const uint16_t *u, const float *xdbl, const float *w_dt, const float *bias, const float *A,
                           const float *Dsum, float *y, int64_t B, int64_t H, int64_t W, int64_t D, int64_t R,
                           int64_t d0, int64_t d1, int64_t n_threads);
int mamba_scan_f32(const float *x, int64_t x_stride, const float *dt_raw, int64_t dt_stride, const float *dt_bias,
                   int do_softplus, const float *Bm, const float *Cm, int64_t bc_stride, const float *At,
                   const float *Dskip, const float *z, int64_t z_stride, float *y, int64_t batch, int64_t L, int64_t E,
                   int64_t N, int64_t e0, int64_t e1, int reverse);
void causal_conv1d_f32(const float *x, int64_t x_stride, const float *Wt, const float *bias, float *y, int64_t batch,
                       int64_t L, int64_t E, int64_t K, int64_t e0, int64_t e1, int reverse, int apply_silu);

static FILE *in;

static void fail(const char *what) {
    fprintf(stderr, "kernel_driver: %s\n", what);
    exit(2);
}

static int64_t read_int(void) {
    int64_t v;
    if (fread(&v, sizeof v, 1, in) != 1) fail("short input (sizes)");
    return v;
}

static float *read_floats(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (p == NULL) fail("out of memory");
    if (fread(p, sizeof(float), (size_t)n, in) != (size_t)n) fail("short input (data)");
    return p;
}

static void write_floats(FILE *out, const float *p, int64_t n) {
    if (fwrite(p, sizeof(float), (size_t)n, out) != (size_t)n) fail("short write");
}

/* sizes B H W D R; u (B L D), xdbl (B L 4 (R+2)), w_dt (4 R D), bias (4 D), A (4 D), Dsum (D) ->
   y from float32 u, then y from u rounded to bfloat16 (to nearest, ties to even) */
static void run_scan(FILE *out) {
    const int64_t B = read_int(), H = read_int(), W = read_int(), D = read_int(), R = read_int(), L = H * W;
    float *u = read_floats(B * L * D), *xdbl = read_floats(B * L * 4 * (R + 2)), *w_dt = read_floats(4 * R * D);
    float *bias = read_floats(4 * D), *A = read_floats(4 * D), *Dsum = read_floats(D);
    float *y = malloc((size_t)(B * L * D) * sizeof(float));
    uint16_t *u16 = malloc((size_t)(B * L * D) * sizeof(uint16_t));
    if (y == NULL || u16 == NULL) fail("out of memory");
    if (ss2d_scan_dstate1(u, xdbl, w_dt, bias, A, Dsum, y, B, H, W, D, R, 0, D, 1) != 0) fail("scan failed");
    write_floats(out, y, B * L * D);
    for (int64_t i = 0; i < B * L * D; ++i) {
        uint32_t bits;
        memcpy(&bits, u + i, sizeof bits);
        u16[i] = (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
    if (ss2d_scan_dstate1_bf16(u16, xdbl, w_dt, bias, A, Dsum, y, B, H, W, D, R, 0, D, 1) != 0) fail("scan failed");
    write_floats(out, y, B * L * D);
}

/* sizes batch L E N K reverse; x (batch L E), dt (batch L E), dt_bias (E), Bm (batch L N),
   Cm (batch L N), At (N E), Dskip (E), z (batch L E), Wt (K E), conv_bias (E) -> the gated scan's y,
   then the conv's y with SiLU */
static void run_mixer(FILE *out) {
    const int64_t batch = read_int(), L = read_int(), E = read_int(), N = read_int(), K = read_int();
    const int reverse = (int)read_int();
    const int64_t rows = batch * L;
    float *x = read_floats(rows * E), *dt = read_floats(rows * E), *dt_bias = read_floats(E);
    float *Bm = read_floats(rows * N), *Cm = read_floats(rows * N), *At = read_floats(N * E), *Dskip = read_floats(E);
    float *z = read_floats(rows * E), *Wt = read_floats(K * E), *conv_bias = read_floats(E);
    float *y = malloc((size_t)(rows * E) * sizeof(float));
    if (y == NULL) fail("out of memory");
    if (mamba_scan_f32(x, E, dt, E, dt_bias, 1, Bm, Cm, N, At, Dskip, z, E, y, batch, L, E, N, 0, E, reverse) != 0)
        fail("mixer scan failed");
    write_floats(out, y, rows * E);
    causal_conv1d_f32(x, E, Wt, conv_bias, y, batch, L, E, K, 0, E, reverse, 1);
    write_floats(out, y, rows * E);
}

int main(int argc, char **argv) {
    if (argc != 4) fail("usage: kernel_driver scan|mixer IN OUT");
    in = fopen(argv[2], "rb");
    FILE *out = fopen(argv[3], "wb");
    if (in == NULL || out == NULL) fail("cannot open the files");
    if (strcmp(argv[1], "scan") == 0)
        run_scan(out);
    else if (strcmp(argv[1], "mixer") == 0)
        run_mixer(out);
    else
        fail("unknown kernel");
    return fclose(out) == 0 ? 0 : 2;
}
