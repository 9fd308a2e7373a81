/**
 * Chooses and initialises the tfjs backend the GPT runs on.
 *
 * - `tensorflow`: libtensorflow through `@tensorflow/tfjs-node-gpu` or
 *   `@tensorflow/tfjs-node`. Neither is a dependency of qlr (their install
 *   scripts download libtensorflow); a user installs one next to qlr and it
 *   is imported dynamically.
 * - `wasm-blas`: the wasm backend with its matrix products computed by
 *   native OpenBLAS through the optional addon in native/ (./blasKernels.ts),
 *   the fastest choice on a CPU; same results as `wasm` up to float rounding.
 * - `wasm`: `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD, one thread under
 *   Node).
 * - `cpu`: pure JavaScript, the last resort.
 * - `auto`: `tensorflow` when one of the node packages loads, else
 *   `wasm-blas` when the addon loads, else `wasm`, else `cpu`.
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm"
import { Effect } from "effect"
import { createRequire } from "node:module"
import * as path from "node:path"
import { ModelError } from "../domain/Errors.js"
import type { BackendInfo } from "../services/Model.js"
import { type BackendChoice, messageOf } from "./backendChoices.js"
import { type BlasAddon, loadBlas, useBlasKernels } from "./blasKernels.js"

export { type BackendChoice, BackendChoices, messageOf } from "./backendChoices.js"

/** The node packages that provide the `tensorflow` backend, GPU build first. */
const nodePackages = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"] as const

const installHint = (): string =>
  `install one next to qlr: \`npm install @tensorflow/tfjs-node@${tf.version.tfjs}\` (CPU) or ` +
  `\`npm install @tensorflow/tfjs-node-gpu@${tf.version.tfjs}\` (NVIDIA GPU, needs CUDA 11.2 and cuDNN 8.1)`

/** The message of a thrown value. */

/** What importing the node packages gave: the one that loaded, or why none did. */
type NodeBinding =
  | { readonly _tag: "Loaded"; readonly pkg: string }
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Broken"; readonly pkg: string; readonly reason: string }

const isNotInstalled = (e: unknown, pkg: string): boolean => {
  const code = (e as { code?: unknown } | null)?.code
  return (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && messageOf(e).includes(pkg)
}

/** Import the first node package that is installed; never fails. */
const loadNodeBinding: Effect.Effect<NodeBinding> = Effect.promise(async () => {
  for (const pkg of nodePackages) {
    // A computed specifier: the packages are optional and must not be resolved at build time.
    const specifier: string = pkg
    try {
      await import(specifier)
    } catch (e) {
      if (isNotInstalled(e, pkg)) continue
      return { _tag: "Broken", pkg, reason: messageOf(e) } as const
    }
    // Registered with a different copy of tfjs (another version): invisible to ours.
    if (tf.findBackendFactory("tensorflow") == null)
      return {
        _tag: "Broken",
        pkg,
        reason: `it registered its backend with another copy of @tensorflow/tfjs; install ${pkg}@${tf.version.tfjs} to match qlr's`
      } as const
    return { _tag: "Loaded", pkg } as const
  }
  return { _tag: "Absent" } as const
})

const activate = (name: string): Effect.Effect<boolean, ModelError> =>
  Effect.tryPromise({
    try: async () => (await tf.setBackend(name)) && tf.getBackend() === name,
    catch: (e) => new ModelError({ message: `could not initialise the tfjs '${name}' backend: ${messageOf(e)}` })
  })

/**
 * The native backend's own report. tfjs-node-gpu silently runs on the CPU
 * when the CUDA 11.2 / cuDNN 8.1 libraries it was built for do not load;
 * `isUsingGpuDevice` is what its binding found when it listed TensorFlow's
 * devices (TFE_ContextListDevices) at start-up, so it is the real answer.
 */
const tensorflowInfo = (pkg: string): BackendInfo => {
  const backend = tf.findBackend("tensorflow") as { readonly isUsingGpuDevice?: unknown } | null
  const gpu = backend?.isUsingGpuDevice === true
  const where = gpu
    ? "on a GPU"
    : pkg === "@tensorflow/tfjs-node-gpu"
      ? "on the CPU: TensorFlow found no GPU device (tfjs-node-gpu needs CUDA 11.2 and cuDNN 8.1 on the library path)"
      : "on the CPU"
  return { backend: "tensorflow", gpu, description: `libtensorflow via ${pkg} ${where}` }
}

const useTensorflow = (binding: NodeBinding): Effect.Effect<BackendInfo, ModelError> => {
  switch (binding._tag) {
    case "Absent":
      return Effect.fail(
        new ModelError({
          message: `--backend tensorflow needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu, and neither is installed; ${installHint()}`
        })
      )
    case "Broken":
      return Effect.fail(new ModelError({ message: `${binding.pkg} is installed but could not be used: ${binding.reason}` }))
    case "Loaded":
      return activate("tensorflow").pipe(
        Effect.filterOrFail(
          (ok) => ok,
          () => new ModelError({ message: `${binding.pkg} loaded but its 'tensorflow' backend failed to initialise` })
        ),
        Effect.as(tensorflowInfo(binding.pkg))
      )
  }
}

/** Where the wasm binaries are: next to the package's entry point, from src/, dist/ or an installed qlr alike. */
const wasmDirectory = (): string =>
  path.dirname(createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm")) + path.sep

/** What the contiguous slice needs of the wasm backend (tfjs-backend-wasm's BackendWasm). */
interface WasmHeap {
  readonly makeOutput: (shape: Array<number>, dtype: tf.DataType) => tf.TensorInfo
  readonly typedArrayFromHeap: (t: tf.TensorInfo) => Float32Array | Int32Array | Uint8Array
}

type KernelArgs = Parameters<tf.KernelFunc>[0]

let contiguousSliceRegistered = false

/**
 * wasm's Slice kernel copies its whole input out of the wasm heap on every
 * call, so unstacking [n, ...] into n pieces costs n whole copies: the
 * per-(batch, head) attention spends most of its time there. A contiguous
 * slice is one copy between two heap views instead. Unpack is re-registered
 * too, as it calls the original slice directly. Other slices keep the
 * original kernel.
 */
const registerContiguousSlice = (): void => {
  if (contiguousSliceRegistered) return
  contiguousSliceRegistered = true
  const original = tf.getKernel(tf.Slice, "wasm")!.kernelFunc
  const slice = (args: KernelArgs): tf.TensorInfo => {
    const x = args.inputs["x"]!
    const attrs = args.attrs as unknown as tf.SliceAttrs
    const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin, attrs.size)
    if (x.dtype === "string" || !tf.slice_util.isSliceContinous(x.shape, begin, size))
      return original(args) as tf.TensorInfo
    const heap = args.backend as WasmHeap
    const out = heap.makeOutput(size, x.dtype)
    // Views only after makeOutput: its allocation may grow, and so detach, the heap.
    const offset = tf.slice_util.computeFlatOffset(begin, tf.util.computeStrides(x.shape))
    heap.typedArrayFromHeap(out).set(heap.typedArrayFromHeap(x).subarray(offset, offset + tf.util.sizeFromShape(size)))
    return out
  }
  const unpack = (args: KernelArgs): Array<tf.TensorInfo> => {
    const value = args.inputs["value"]!
    const rank = value.shape.length
    const { axis: a } = args.attrs as unknown as tf.UnpackAttrs
    const axis = a < 0 ? a + rank : a
    const shape = value.shape.filter((_, i) => i !== axis)
    const size = value.shape.map((d, i) => (i === axis ? 1 : d))
    return Array.from({ length: value.shape[axis]! }, (_, i) => {
      const begin = value.shape.map((_, j) => (j === axis ? i : 0))
      return { ...slice({ ...args, inputs: { x: value }, attrs: { begin, size } }), shape }
    })
  }
  for (const [kernelName, kernelFunc] of [[tf.Slice, slice], [tf.Unpack, unpack]] as const) {
    tf.unregisterKernel(kernelName, "wasm")
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc })
  }
}

/** The wasm backend, its matMuls on `blas` or (null) on XNNPACK; null when wasm does not initialise. */
const useWasm = (blas: BlasAddon | null): Effect.Effect<BackendInfo | null, ModelError> =>
  Effect.gen(function* () {
    // setWasmPaths must come before the backend's first initialisation.
    if (tf.findBackend("wasm") == null) yield* Effect.sync(() => setWasmPaths(wasmDirectory()))
    if (!(yield* activate("wasm"))) return null
    yield* Effect.sync(() => {
      registerContiguousSlice()
      useBlasKernels(blas)
    })
    const simd = tf.env().getBool("WASM_HAS_SIMD_SUPPORT")
    const threads = tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT")
    const wasm = `tfjs wasm (XNNPACK${simd ? ", SIMD" : ""}, ${threads ? "multi-threaded" : "one thread"})`
    return blas === null
      ? { backend: "wasm", gpu: false, description: wasm }
      : { backend: "wasm-blas", gpu: false, description: `${wasm}, matMuls on native BLAS (${blas.describe()})` }
  })

const wasmFailed = new ModelError({ message: "the tfjs wasm backend failed to initialise; try --backend cpu" })

const useCpu: Effect.Effect<BackendInfo, ModelError> = activate("cpu").pipe(
  Effect.as({ backend: "cpu", gpu: false, description: "tfjs cpu (pure JavaScript, slow)" })
)

/** Initialise the chosen backend and make it tfjs's current one. */
export const selectBackend = (choice: BackendChoice): Effect.Effect<BackendInfo, ModelError> => {
  switch (choice) {
    case "tensorflow":
      return Effect.flatMap(loadNodeBinding, useTensorflow)
    case "wasm":
      return Effect.flatMap(useWasm(null), (info) => (info === null ? Effect.fail(wasmFailed) : Effect.succeed(info)))
    case "wasm-blas": {
      const blas = loadBlas()
      return blas._tag === "Unavailable"
        ? Effect.fail(new ModelError({ message: `--backend wasm-blas: ${blas.reason}; or use --backend wasm` }))
        : Effect.flatMap(useWasm(blas.addon), (info) => (info === null ? Effect.fail(wasmFailed) : Effect.succeed(info)))
    }
    case "cpu":
      return useCpu
    case "auto":
      return Effect.gen(function* () {
        const binding = yield* loadNodeBinding
        if (binding._tag === "Loaded") return yield* useTensorflow(binding)
        const blas = loadBlas()
        const wasm = yield* useWasm(blas._tag === "Loaded" ? blas.addon : null).pipe(Effect.orElseSucceed(() => null))
        const fallback = wasm ?? (yield* useCpu)
        // Why a faster path was not taken is worth saying in config.json.
        const notes = [
          ...(binding._tag === "Broken" ? [`${binding.pkg} not used: ${binding.reason}`] : []),
          ...(wasm !== null && blas._tag === "Unavailable" ? [`native BLAS not used: ${blas.reason}`] : [])
        ]
        return { ...fallback, description: [fallback.description, ...notes].join("; ") }
      })
  }
}

/**
 * Make sure `info`'s backend is tfjs's current one (another layer may have
 * switched it). `wasm-blas` is tfjs's wasm backend with the BLAS kernels,
 * which are global: `wasm` and `wasm-blas` switch them.
 */
export const ensureBackend = (info: BackendInfo): Effect.Effect<void, ModelError> => {
  const name = info.backend === "wasm-blas" ? "wasm" : info.backend
  const kernels = Effect.sync(() => {
    if (name !== "wasm") return
    const blas = loadBlas()
    useBlasKernels(info.backend === "wasm-blas" && blas._tag === "Loaded" ? blas.addon : null)
  })
  const backend: Effect.Effect<unknown, ModelError> =
    tf.getBackend() === name
      ? Effect.void
      : Effect.filterOrFail(
          activate(name),
          (ok) => ok,
          () => new ModelError({ message: `could not switch tfjs back to the '${info.backend}' backend` })
        )
  return Effect.zipRight(backend, kernels)
}

/** Fail unless a GPU device is really in use (`--require-gpu`). */
export const requireGpu = (info: BackendInfo): Effect.Effect<void, ModelError> =>
  info.gpu
    ? Effect.void
    : Effect.fail(
        new ModelError({
          message: `a GPU is required but the model runs on ${info.description}; ${installHint()}, then use --backend tensorflow or auto`
        })
      )
