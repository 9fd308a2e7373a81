/*
 * qlr_blas: single-precision matrix products by native BLAS (OpenBLAS), exp
 * and erf vectorised by glibc's libmvec, and sums over a block of axes, for
 * the tfjs wasm backend. The operands live in the wasm heap, a plain
 * ArrayBuffer; the caller passes that buffer and element offsets, so one call
 * does a whole batched product without copying anything.
 *
 * Plain node_api.h (N-API version 8): no npm dependency, one binary per
 * platform whatever the Node version.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* erff's vector variants came with glibc 2.35; older systems take the scalar loop. */
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35)
#include <immintrin.h>
/* libmvec's vector variants (x86_64 vector ABI): 4 lanes on SSE, 8 on AVX2. Accurate to a few ulp. */
__m128 _ZGVbN4v_expf(__m128);
__m128 _ZGVbN4v_erff(__m128);
__m256 _ZGVdN8v_expf(__m256);
__m256 _ZGVdN8v_erff(__m256);
#define MVEC 1
#endif

#define CHECK(env, call)                                       \
  do {                                                         \
    if ((call) != napi_ok) {                                   \
      napi_throw_error((env), NULL, "qlr_blas: " #call " failed"); \
      return NULL;                                             \
    }                                                          \
  } while (0)

static napi_value fail(napi_env env, const char* message) {
  napi_throw_range_error(env, NULL, message);
  return NULL;
}

/* Whether `count` matrices of `size` floats, `stride` apart from `offset`, lie inside `length` floats. */
static int inside(int64_t offset, int64_t stride, int64_t count, int64_t size, int64_t length) {
  if (offset < 0 || stride < 0 || size < 0) return 0;
  return offset + (count - 1) * stride + size <= length;
}

/* A call's arguments, the first being the wasm heap: an ArrayBuffer of `length` floats. */
#define MAX_ARGS 16
typedef struct {
  napi_value argv[MAX_ARGS];
  float* heap;
  int64_t length;
} HeapCall;

/* Read a call of exactly `count` arguments; false, with a JavaScript exception pending, when it is not one. */
static bool read_heap_call(napi_env env, napi_callback_info info, size_t count, const char* usage, HeapCall* call) {
  size_t argc = MAX_ARGS;
  void* data;
  size_t bytes;
  if (napi_get_cb_info(env, info, &argc, call->argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "qlr_blas: cannot read the call's arguments");
    return false;
  }
  if (argc != count) {
    napi_throw_range_error(env, NULL, usage);
    return false;
  }
  if (napi_get_arraybuffer_info(env, call->argv[0], &data, &bytes) != napi_ok) {
    napi_throw_error(env, NULL, "qlr_blas: the first argument must be the heap's ArrayBuffer");
    return false;
  }
  call->heap = (float*)data;
  call->length = (int64_t)(bytes / sizeof(float));
  return true;
}

/*
 * OpenBLAS's threads pay off only on large products: on small ones (the
 * per-head attention products, every product of the cpu preset) waking and
 * synchronising them costs more than they save, and measured whole training
 * steps ran slower with two threads. So products below this many
 * multiply-adds run on one thread, larger ones on all of OpenBLAS's threads
 * (its default, or OPENBLAS_NUM_THREADS).
 */
#define LARGE_PRODUCT ((int64_t)1 << 27)
static int max_threads = 0;
static int current_threads = 0;

static void use_threads(int threads) {
  if (threads == current_threads) return;
  openblas_set_num_threads(threads);
  current_threads = threads;
}

/*
 * gemm(heap, batch, transA, transB, m, n, k, aOffset, aStride, bOffset, bStride, cOffset, cStride)
 * For i < batch, with row-major matrices at the given float offsets:
 *   C_i [m x n] = op(A_i) [m x k] . op(B_i) [k x n],  op = transpose when asked.
 * A stride of 0 reuses one matrix for every i (broadcasting).
 */
static napi_value gemm(napi_env env, napi_callback_info info) {
  HeapCall call;
  if (!read_heap_call(env, info, 13, "gemm takes 13 arguments", &call)) return NULL;
  napi_value* argv = call.argv;
  const int64_t length = call.length;
  int64_t v[12];
  bool ta, tb;
  CHECK(env, napi_get_value_bool(env, argv[2], &ta));
  CHECK(env, napi_get_value_bool(env, argv[3], &tb));
  CHECK(env, napi_get_value_int64(env, argv[1], &v[0]));
  for (int i = 4; i < 13; i++) CHECK(env, napi_get_value_int64(env, argv[i], &v[i - 3]));
  const int64_t batch = v[0], m = v[1], n = v[2], k = v[3];
  const int64_t aOff = v[4], aStride = v[5], bOff = v[6], bStride = v[7], cOff = v[8], cStride = v[9];
  if (batch < 1 || m < 1 || n < 1 || k < 1 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return fail(env, "gemm: batch, m, n and k must be positive 32-bit integers");
  if (!inside(aOff, aStride, batch, m * k, length) || !inside(bOff, bStride, batch, k * n, length) ||
      !inside(cOff, cStride, batch, m * n, length))
    return fail(env, "gemm: an operand lies outside the heap");
  float* heap = call.heap;
  use_threads(m * n * k >= LARGE_PRODUCT ? max_threads : 1);
  const int lda = (int)(ta ? m : k), ldb = (int)(tb ? k : n), ldc = (int)n;
  for (int64_t i = 0; i < batch; i++)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                1.0f, heap + aOff + i * aStride, lda, heap + bOff + i * bStride, ldb, 0.0f, heap + cOff + i * cStride,
                ldc);
  return NULL;
}

typedef float (*scalar_fn)(float);

#ifdef MVEC
__attribute__((target("avx2"))) static int64_t unary_avx2(int op, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, op == 0 ? _ZGVdN8v_expf(v) : _ZGVdN8v_erff(v));
  }
  return i;
}

static int64_t unary_sse(int op, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(x + i);
    _mm_storeu_ps(y + i, op == 0 ? _ZGVbN4v_expf(v) : _ZGVbN4v_erff(v));
  }
  return i;
}
#endif

/*
 * unary(heap, op, xOffset, yOffset, n): y[i] = f(x[i]) for i < n, f = expf
 * (op 0) or erff (op 1), at float offsets into the heap.
 */
static napi_value unary(napi_env env, napi_callback_info info) {
  HeapCall call;
  if (!read_heap_call(env, info, 5, "unary takes 5 arguments", &call)) return NULL;
  napi_value* argv = call.argv;
  const int64_t length = call.length;
  int32_t op;
  int64_t xOff, yOff, n;
  CHECK(env, napi_get_value_int32(env, argv[1], &op));
  CHECK(env, napi_get_value_int64(env, argv[2], &xOff));
  CHECK(env, napi_get_value_int64(env, argv[3], &yOff));
  CHECK(env, napi_get_value_int64(env, argv[4], &n));
  if (op != 0 && op != 1) return fail(env, "unary: op must be 0 (exp) or 1 (erf)");
  if (n < 0 || !inside(xOff, 0, 1, n, length) || !inside(yOff, 0, 1, n, length))
    return fail(env, "unary: an operand lies outside the heap");
  const float* x = call.heap + xOff;
  float* y = call.heap + yOff;
  int64_t done = 0;
#ifdef MVEC
  done = __builtin_cpu_supports("avx2") ? unary_avx2(op, x, y, n) : unary_sse(op, x, y, n);
#endif
  const scalar_fn f = op == 0 ? expf : erff;
  for (int64_t i = done; i < n; i++) y[i] = f(x[i]);
  return NULL;
}

/*
 * reduce(heap, xOffset, yOffset, outer, size, inner, scale): for x viewed as
 * [outer, size, inner], y[o, j] = scale * sum over r of x[o, r, j] -- a sum
 * (scale 1) or mean (1/size) over a contiguous block of axes, without the
 * transpose wasm makes first. Rows are added in order, vectorised along j:
 * meant for inner > 1 (the caller leaves trailing-axis sums to wasm).
 */
static napi_value reduce(napi_env env, napi_callback_info info) {
  HeapCall call;
  if (!read_heap_call(env, info, 7, "reduce takes 7 arguments", &call)) return NULL;
  napi_value* argv = call.argv;
  const int64_t length = call.length;
  int64_t v[5];
  for (int i = 1; i < 6; i++) CHECK(env, napi_get_value_int64(env, argv[i], &v[i - 1]));
  double scale;
  CHECK(env, napi_get_value_double(env, argv[6], &scale));
  const int64_t xOff = v[0], yOff = v[1], outer = v[2], size = v[3], inner = v[4];
  if (outer < 1 || size < 1 || inner < 1) return fail(env, "reduce: outer, size and inner must be positive");
  if (!inside(xOff, 0, 1, outer * size * inner, length) || !inside(yOff, 0, 1, outer * inner, length))
    return fail(env, "reduce: an operand lies outside the heap");
  const float* x = call.heap + xOff;
  float* y = call.heap + yOff;
  const float s = (float)scale;
  for (int64_t o = 0; o < outer; o++) {
    float* restrict out = y + o * inner;
    const float* block = x + o * size * inner;
    for (int64_t j = 0; j < inner; j++) out[j] = block[j];
    for (int64_t r = 1; r < size; r++) {
      const float* restrict row = block + r * inner;
      for (int64_t j = 0; j < inner; j++) out[j] += row[j];
    }
    if (s != 1.0f)
      for (int64_t j = 0; j < inner; j++) out[j] *= s;
  }
  return NULL;
}

/*
 * adamw(heap, pOffset, gOffset, mOffset, vOffset, scaleOffset, pOut, mOut, vOut, n,
 *       beta1, beta2, decay, stepSize, sqrtBias2, eps)
 * One parameter's torch.optim.AdamW update in one pass, with the operations,
 * their order and their float32 rounding of the tfjs ops it replaces
 * (TfjsModel's adamW): g = grad * scale (the clipping factor, a float in the
 * heap), m = m beta1 + g (1 - beta1), v = v beta2 + g^2 (1 - beta2),
 * p = p decay - m / (sqrt(v) / sqrtBias2 + eps) * stepSize. Fourteen wasm
 * kernels per parameter become one.
 */
static napi_value adamw(napi_env env, napi_callback_info info) {
  HeapCall call;
  if (!read_heap_call(env, info, 16, "adamw takes 16 arguments", &call)) return NULL;
  napi_value* argv = call.argv;
  const int64_t length = call.length;
  int64_t o[9];
  for (int i = 1; i < 10; i++) CHECK(env, napi_get_value_int64(env, argv[i], &o[i - 1]));
  double h[6];
  for (int i = 10; i < 16; i++) CHECK(env, napi_get_value_double(env, argv[i], &h[i - 10]));
  const int64_t n = o[8];
  if (n < 0 || !inside(o[4], 0, 1, 1, length)) return fail(env, "adamw: an operand lies outside the heap");
  for (int i = 0; i < 8; i++)
    if (i != 4 && !inside(o[i], 0, 1, n, length)) return fail(env, "adamw: an operand lies outside the heap");
  float* heap = call.heap;
  const float* p = heap + o[0];
  const float* g = heap + o[1];
  const float* m = heap + o[2];
  const float* v = heap + o[3];
  const float scale = heap[o[4]];
  float* restrict pOut = heap + o[5];
  float* restrict mOut = heap + o[6];
  float* restrict vOut = heap + o[7];
  const float beta1 = (float)h[0], beta2 = (float)h[1], decay = (float)h[2], stepSize = (float)h[3],
              sqrtBias2 = (float)h[4], eps = (float)h[5];
  const float oneMinusBeta1 = (float)(1 - h[0]), oneMinusBeta2 = (float)(1 - h[1]);
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * scale;
    const float mi = m[i] * beta1 + gi * oneMinusBeta1;
    const float vi = v[i] * beta2 + (gi * gi) * oneMinusBeta2;
    const float denom = sqrtf(vi) / sqrtBias2 + eps;
    pOut[i] = p[i] * decay - (mi / denom) * stepSize;
    mOut[i] = mi;
    vOut[i] = vi;
  }
  return NULL;
}

/* describe(): OpenBLAS's build configuration and its thread use. */
static napi_value describe(napi_env env, napi_callback_info info) {
  (void)info;
  char text[512];
  if (max_threads > 1)
    snprintf(text, sizeof text, "%s; %d threads on products of 2^27 multiply-adds or more, else 1", openblas_get_config(),
             max_threads);
  else
    snprintf(text, sizeof text, "%s; 1 thread", openblas_get_config());
  napi_value result;
  CHECK(env, napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  max_threads = current_threads = openblas_get_num_threads();
  napi_property_descriptor props[] = {
    {"gemm", NULL, gemm, NULL, NULL, NULL, napi_enumerable, NULL},
    {"unary", NULL, unary, NULL, NULL, NULL, napi_enumerable, NULL},
    {"reduce", NULL, reduce, NULL, NULL, NULL, napi_enumerable, NULL},
    {"adamw", NULL, adamw, NULL, NULL, NULL, napi_enumerable, NULL},
    {"describe", NULL, describe, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
