/**
 * The kernels of the `wasm-blas` backend: tfjs's wasm backend with its
 * matrix products computed by native BLAS.
 *
 * XNNPACK in wasm reaches ~50 GFLOP/s on plain 2-D products and ~2 GFLOP/s
 * on transposed or batched ones; OpenBLAS reaches ~290 on the same machine
 * for all of them. The optional addon in native/ (`npm run build:native`)
 * exposes cblas_sgemm over the wasm heap, which is a plain ArrayBuffer, so
 * the BLAS reads and writes the tensors where they are: no copies.
 *
 * With transposed and batched products cheap, the GPT runs its plain
 * "autodiff" formulation, which needs UnsortedSegmentSum (the gradient of
 * the embedding's gather; wasm has none). The other kernels here replace
 * slow wasm ones measured in the training step: Exp and Erf (GELU and its
 * gradient; ~10 ns an element in wasm, vectorised natively), Sum and Mean
 * over leading or middle axes (wasm transposes first, 10x slower: the
 * gradients of LayerNorm's gains sum over rows), a row-copying
 * GatherV2 (wasm's checks each index through a closure), AdamW's update of
 * one parameter as one kernel instead of fourteen, and Identity and
 * same-dtype Cast that share their input's buffer as the cpu backend's do
 * (wasm's copy it, and autodiff clones every tensor it saves for the
 * backward pass).
 *
 * The addon is optional: when it is not built or its library does not load,
 * `loadBlas` says why and the backend layer keeps plain wasm.
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { createRequire } from "node:module"

/** The addon's functions (native/qlr_blas.c). */
export interface BlasAddon {
  /**
   * For i < batch: C_i [m x n] = op(A_i) op(B_i), row-major float32 matrices
   * at element offsets into `heap`, `stride` elements apart (0: the same
   * matrix for every i).
   */
  readonly gemm: (
    heap: ArrayBufferLike,
    batch: number,
    transposeA: boolean,
    transposeB: boolean,
    m: number,
    n: number,
    k: number,
    aOffset: number,
    aStride: number,
    bOffset: number,
    bStride: number,
    cOffset: number,
    cStride: number
  ) => void
  /** y[i] = f(x[i]) for i < n at element offsets into `heap`; f = exp (op 0) or erf (op 1). */
  readonly unary: (heap: ArrayBufferLike, op: 0 | 1, xOffset: number, yOffset: number, n: number) => void
  /** For x viewed as [outer, size, inner]: y[o, j] = scale * sum over r of x[o, r, j]. */
  readonly reduce: (heap: ArrayBufferLike, xOffset: number, yOffset: number, outer: number, size: number, inner: number, scale: number) => void
  /** One parameter's AdamW update (see {@link AdamWUpdate}); `scaleOffset` holds the gradient's clipping factor. */
  readonly adamw: (
    heap: ArrayBufferLike,
    pOffset: number,
    gOffset: number,
    mOffset: number,
    vOffset: number,
    scaleOffset: number,
    pOutOffset: number,
    mOutOffset: number,
    vOutOffset: number,
    n: number,
    beta1: number,
    beta2: number,
    decay: number,
    stepSize: number,
    sqrtBias2: number,
    eps: number
  ) => void
  /** OpenBLAS's build configuration and thread use. */
  readonly describe: () => string
}

/**
 * A kernel only wasm-blas has: one parameter's AdamW update. Inputs `p`, `g`
 * (the gradient), `m`, `v` (the moments) and the scalar `scale` (the clipping
 * factor of g); outputs the new p, m and v. A backend without it runs the
 * same formula as tfjs ops (TfjsModel).
 */
export const AdamWUpdate = "QlrAdamWUpdate"

/** AdamWUpdate's attributes: p' = p decay - m' / (sqrt(v') / sqrtBias2 + eps) stepSize. */
export interface AdamWUpdateAttrs {
  readonly beta1: number
  readonly beta2: number
  /** 1 - lr weight_decay for decayed parameters, else 1. */
  readonly decay: number
  /** lr / (1 - beta1^step). */
  readonly stepSize: number
  /** sqrt(1 - beta2^step). */
  readonly sqrtBias2: number
  readonly eps: number
}

/** What loading the addon gave: the addon, or why it is unavailable (said in BackendInfo.description). */
export type BlasLoad =
  | { readonly _tag: "Loaded"; readonly addon: BlasAddon }
  | { readonly _tag: "Unavailable"; readonly reason: string }

/** Built by node-gyp in native/, two levels above both src/layers and dist/layers. */
const addonPath = "../../native/build/Release/qlr_blas.node"

let loaded: BlasLoad | undefined

/** Load the addon once; never throws. */
export const loadBlas = (): BlasLoad => {
  if (loaded !== undefined) return loaded
  try {
    loaded = { _tag: "Loaded", addon: createRequire(import.meta.url)(addonPath) as BlasAddon }
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    loaded = {
      _tag: "Unavailable",
      reason:
        code === "MODULE_NOT_FOUND"
          ? "the native BLAS addon is not built (apt-get install libopenblas-dev, then npm run build:native)"
          : `the native BLAS addon did not load: ${e instanceof Error ? e.message : String(e)}`
    }
  }
  return loaded
}

/** What the kernels need of tfjs-backend-wasm's BackendWasm. */
interface WasmBackend {
  readonly wasm: { readonly HEAPU8: Uint8Array }
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly getMemoryOffset: (dataId: tf.DataId) => number
  readonly typedArrayFromHeap: (t: tf.TensorInfo) => Float32Array | Int32Array | Uint8Array
  readonly incRef: (dataId: tf.DataId) => void
}

type KernelArgs = Parameters<tf.KernelFunc>[0]

const floatOffset = (backend: WasmBackend, t: tf.TensorInfo): number => backend.getMemoryOffset(t.dataId) / 4

/**
 * a [..., m, k] x b [..., k, n] (after the transposes) on the BLAS, or null
 * where the original kernel must run: other dtypes, empty operands, or outer
 * dimensions that broadcast otherwise than one side having a single matrix.
 */
const blasMatMul = (
  addon: BlasAddon,
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean
): tf.TensorInfo | null => {
  if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2) return null
  const [aRows, aCols] = a.shape.slice(-2) as [number, number]
  const [bRows, bCols] = b.shape.slice(-2) as [number, number]
  const [m, k] = transposeA ? [aCols, aRows] : [aRows, aCols]
  const [kb, n] = transposeB ? [bCols, bRows] : [bRows, bCols]
  const aOuter = a.shape.slice(0, -2)
  const bOuter = b.shape.slice(0, -2)
  const aBatch = tf.util.sizeFromShape(aOuter)
  const bBatch = tf.util.sizeFromShape(bOuter)
  const sameOuter = aOuter.length === bOuter.length && aOuter.every((d, i) => d === bOuter[i])
  if (k !== kb || m * n * k === 0 || !(sameOuter || aBatch === 1 || bBatch === 1)) return null
  const outer = aBatch >= bBatch ? aOuter : bOuter
  const out = backend.makeOutput([...outer, m, n], "float32")
  // The heap only after makeOutput: its allocation may grow, and so replace, the buffer.
  addon.gemm(
    backend.wasm.HEAPU8.buffer,
    Math.max(aBatch, bBatch),
    transposeA,
    transposeB,
    m,
    n,
    k,
    floatOffset(backend, a),
    aBatch === 1 ? 0 : m * k,
    floatOffset(backend, b),
    bBatch === 1 ? 0 : k * n,
    floatOffset(backend, out),
    m * n
  )
  return out
}

/** out[s] = sum of the rows x[i] with segmentIds[i] = s; ids outside [0, numSegments) are dropped, as tfjs's cpu kernel does. */
const unsortedSegmentSum = (args: KernelArgs): tf.TensorInfo => {
  const backend = args.backend as unknown as WasmBackend
  const { x, segmentIds } = args.inputs as unknown as { x: tf.TensorInfo; segmentIds: tf.TensorInfo }
  const { numSegments } = args.attrs as unknown as tf.UnsortedSegmentSumAttrs
  if (x.dtype !== "float32") throw new Error(`UnsortedSegmentSum on wasm-blas supports float32, not ${x.dtype}`)
  const row = tf.util.sizeFromShape(x.shape) / Math.max(1, tf.util.sizeFromShape(segmentIds.shape))
  const out = backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], "float32")
  // Views only after makeOutput: its allocation may grow, and so detach, the heap.
  const xs = backend.typedArrayFromHeap(x) as Float32Array
  const segments = backend.typedArrayFromHeap(segmentIds) as Int32Array
  const sums = backend.typedArrayFromHeap(out) as Float32Array
  sums.fill(0)
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!
    if (s < 0 || s >= numSegments) continue
    for (let j = 0, from = i * row, to = s * row; j < row; j++) sums[to + j]! += xs[from + j]!
  }
  return out
}

/** params[indices] along axis 0 of float32 params, row by row; null where the original kernel must run. */
const gatherRows = (args: KernelArgs): tf.TensorInfo | null => {
  const backend = args.backend as unknown as WasmBackend
  const { x, indices } = args.inputs as unknown as { x: tf.TensorInfo; indices: tf.TensorInfo }
  const { axis, batchDims } = args.attrs as unknown as tf.GatherV2Attrs
  if (x.dtype !== "float32" || indices.dtype !== "int32" || x.shape.length < 1 || batchDims !== 0) return null
  if (tf.util.parseAxisParam(axis, x.shape)[0] !== 0) return null
  const rows = x.shape[0]!
  const row = tf.util.sizeFromShape(x.shape.slice(1))
  const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], "float32")
  // Views only after makeOutput, as above.
  const params = backend.typedArrayFromHeap(x) as Float32Array
  const ids = backend.typedArrayFromHeap(indices) as Int32Array
  const result = backend.typedArrayFromHeap(out) as Float32Array
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!
    if (!(id >= 0 && id < rows)) throw new Error(`GatherV2: the index value ${id} is not in [0, ${rows - 1}]`)
    result.set(params.subarray(id * row, (id + 1) * row), i * row)
  }
  return out
}

const makeKernels = (addon: BlasAddon, original: ReadonlyMap<string, tf.KernelFunc | undefined>) => {
  const batchMatMul = (args: KernelArgs): tf.TensorInfo => {
    const { a, b } = args.inputs as unknown as { a: tf.TensorInfo; b: tf.TensorInfo }
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs
    return (
      blasMatMul(addon, args.backend as unknown as WasmBackend, a, b, transposeA, transposeB) ??
      (original.get(tf.BatchMatMul)!(args) as tf.TensorInfo)
    )
  }
  // The fused product with neither bias nor activation is the plain one; the rest stays with XNNPACK.
  const fusedMatMul = (args: KernelArgs): tf.TensorInfo => {
    const { a, b, bias, preluActivationWeights } = args.inputs as unknown as Record<string, tf.TensorInfo | undefined>
    const { transposeA, transposeB, activation } = args.attrs as unknown as tf._FusedMatMulAttrs
    const plain = bias == null && preluActivationWeights == null && activation === "linear"
    return (
      (plain ? blasMatMul(addon, args.backend as unknown as WasmBackend, a!, b!, transposeA, transposeB) : null) ??
      (original.get(tf._FusedMatMul)!(args) as tf.TensorInfo)
    )
  }
  // Tensors are immutable, so a copy can be a second reference to the same buffer.
  const share = (name: string, same: (args: KernelArgs) => boolean) => (args: KernelArgs): tf.TensorInfo => {
    const x = args.inputs["x"]!
    if (x.dtype === "string" || !same(args)) return original.get(name)!(args) as tf.TensorInfo
    ;(args.backend as unknown as WasmBackend).incRef(x.dataId)
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype }
  }
  const unary = (name: string, op: 0 | 1) => (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend as unknown as WasmBackend
    const x = args.inputs["x"]!
    if (x.dtype !== "float32") return original.get(name)!(args) as tf.TensorInfo
    const out = backend.makeOutput(x.shape, "float32")
    addon.unary(backend.wasm.HEAPU8.buffer, op, floatOffset(backend, x), floatOffset(backend, out), tf.util.sizeFromShape(x.shape))
    return out
  }
  const reduction = (name: string, mean: boolean) => (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend as unknown as WasmBackend
    const x = args.inputs["x"]!
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs
    const axes = [...new Set(tf.util.parseAxisParam(axis, x.shape))].sort((a, b) => a - b)
    const contiguous = axes.length > 0 && axes.every((a, i) => a === axes[0]! + i)
    const [first, last] = [axes[0]!, axes.at(-1)!]
    // wasm's own kernel is fast on trailing axes (no transpose); ours on the others.
    const trailing = last === x.shape.length - 1
    if (x.dtype !== "float32" || !contiguous || trailing || tf.util.sizeFromShape(x.shape) === 0)
      return original.get(name)!(args) as tf.TensorInfo
    const size = tf.util.sizeFromShape(x.shape.slice(first, last + 1))
    const shape = keepDims ? x.shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : x.shape.filter((_, i) => i < first || i > last)
    const out = backend.makeOutput(shape, "float32")
    addon.reduce(
      backend.wasm.HEAPU8.buffer,
      floatOffset(backend, x),
      floatOffset(backend, out),
      tf.util.sizeFromShape(x.shape.slice(0, first)),
      size,
      tf.util.sizeFromShape(x.shape.slice(last + 1)),
      mean ? 1 / size : 1
    )
    return out
  }
  const gather = (args: KernelArgs): tf.TensorInfo => gatherRows(args) ?? (original.get(tf.GatherV2)!(args) as tf.TensorInfo)
  const adamW = (args: KernelArgs): Array<tf.TensorInfo> => {
    const backend = args.backend as unknown as WasmBackend
    const { p, g, m, v, scale } = args.inputs as unknown as Record<"p" | "g" | "m" | "v" | "scale", tf.TensorInfo>
    const h = args.attrs as unknown as AdamWUpdateAttrs
    const outputs = [p, m, v].map((t) => backend.makeOutput(t.shape, "float32"))
    const [pOut, mOut, vOut] = outputs.map((t) => floatOffset(backend, t))
    // The heap only after makeOutput, as in blasMatMul.
    addon.adamw(
      backend.wasm.HEAPU8.buffer,
      floatOffset(backend, p),
      floatOffset(backend, g),
      floatOffset(backend, m),
      floatOffset(backend, v),
      floatOffset(backend, scale),
      pOut!,
      mOut!,
      vOut!,
      tf.util.sizeFromShape(p.shape),
      h.beta1,
      h.beta2,
      h.decay,
      h.stepSize,
      h.sqrtBias2,
      h.eps
    )
    return outputs
  }
  return new Map<string, tf.KernelFunc>([
    [tf.BatchMatMul, batchMatMul as tf.KernelFunc],
    [tf._FusedMatMul, fusedMatMul as tf.KernelFunc],
    [tf.Exp, unary(tf.Exp, 0) as tf.KernelFunc],
    [tf.Erf, unary(tf.Erf, 1) as tf.KernelFunc],
    [tf.Sum, reduction(tf.Sum, false) as tf.KernelFunc],
    [tf.Mean, reduction(tf.Mean, true) as tf.KernelFunc],
    [tf.GatherV2, gather as tf.KernelFunc],
    [tf.Identity, share(tf.Identity, () => true) as tf.KernelFunc],
    [tf.Cast, share(tf.Cast, (args) => (args.attrs as unknown as tf.CastAttrs).dtype === args.inputs["x"]!.dtype) as tf.KernelFunc],
    [tf.UnsortedSegmentSum, unsortedSegmentSum as tf.KernelFunc],
    [AdamWUpdate, adamW as tf.KernelFunc]
  ])
}

/** wasm's own kernels (undefined: none), kept at the first swap to fall back on and to restore. */
let originals: Map<string, tf.KernelFunc | undefined> | undefined
let installed: BlasAddon | null = null

/**
 * Install the wasm-blas kernels on the wasm backend, matMuls on `addon`, or
 * restore wasm's own with null. The kernel registry is global, so this
 * switches every wasm model in the process.
 */
export const useBlasKernels = (addon: BlasAddon | null): void => {
  if (addon === installed) return
  originals ??= new Map(
    [tf.BatchMatMul, tf._FusedMatMul, tf.Exp, tf.Erf, tf.Sum, tf.Mean, tf.GatherV2, tf.Identity, tf.Cast, tf.UnsortedSegmentSum, AdamWUpdate].map((name) => [
      name,
      tf.getKernel(name, "wasm")?.kernelFunc
    ])
  )
  const kernels = addon === null ? originals : makeKernels(addon, originals)
  for (const [kernelName, kernelFunc] of kernels) {
    if (tf.getKernel(kernelName, "wasm") !== undefined) tf.unregisterKernel(kernelName, "wasm")
    if (kernelFunc !== undefined) tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc })
  }
  installed = addon
}
