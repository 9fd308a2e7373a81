/**
 * `npm run bench`: one JSON document on stdout (progress on stderr) with, for
 * the tiny, cpu and paper shapes and every available backend, the training
 * and evaluation throughput, the share of a run spent evaluating at the
 * preset's settings, peak RSS and the live tensor count; the same step in
 * PyTorch (bench/torch_gpt.py) with the ratio qlr/PyTorch on the path
 * `--backend auto` takes; the agent's decision time; dataset preparation
 * throughput.
 *
 * Each (shape, backend) runs in its own child process, so that its peak RSS
 * is its own and a slow backend can be cut off by a timeout.
 * @since 0.1.0
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { type Batch, sampleBatch } from "../src/domain/Batches.js"
import { QLearningSettings } from "../src/domain/Config.js"
import { type PresetName, presetFields } from "../src/domain/Presets.js"
import { qlearningPolicy } from "../src/domain/QLearning.js"
import { deriveSeed, type RngState } from "../src/domain/Rng.js"
import { loadBlas } from "../src/layers/blasKernels.js"
import { type BackendChoice, selectBackend } from "../src/layers/tfjsBackend.js"
import { TfjsModel } from "../src/layers/TfjsModel.js"
import { Model, type ModelSpec } from "../src/services/Model.js"
import { benchPrepare } from "./prepare.js"

const VOCAB = 65
const PYTHON = "/usr/bin/python3"
const CHILD_TIMEOUT_MS = 240_000

/** A benchmark shape: the preset's model, a batch that fits in memory, how long to measure. */
interface Shape {
  readonly name: PresetName
  readonly batch_size: number
  /** Paper: the preset's batch of 64, as micro-batches of batch_size, one step. */
  readonly accumulate_to?: number
  /** [warm-up, measured] training steps for the fast backends and for the pure-JS cpu backend (null: skipped). */
  readonly steps: readonly [number, number]
  readonly cpuSteps: readonly [number, number] | null
}

const shapes: ReadonlyArray<Shape> = [
  { name: "tiny", batch_size: 16, steps: [3, 15], cpuSteps: [1, 4] },
  { name: "cpu", batch_size: 12, steps: [3, 12], cpuSteps: [1, 2] },
  { name: "paper", batch_size: 4, accumulate_to: 64, steps: [2, 4], cpuSteps: null }
]

/** The preset's fields for shakespeare_char, the dataset every preset is defined for. */
const preset = (name: PresetName) => presetFields(name, "shakespeare_char")

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`)

// ---------------------------------------------------------------------------
// Child: one shape on one backend.

interface ChildJob {
  readonly shape: Shape
  readonly backend: BackendChoice
  /** Also time one step of the preset's full batch (the auto backend only: it is slow elsewhere). */
  readonly accumulate: boolean
}

/** Synthetic tokens: throughput does not depend on the text. */
const corpus = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7919 + (i >> 5) * 31) % VOCAB)

const measureChild = ({ shape, backend, accumulate }: ChildJob) =>
  Effect.gen(function* () {
    const p = preset(shape.name)
    const cpu = backend === "cpu"
    const [warmup, steps] = cpu ? shape.cpuSteps! : shape.steps
    const spec: ModelSpec = {
      shape: { vocab_size: VOCAB, n_layer: p.n_layer, n_head: p.n_head, n_embd: p.n_embd, block_size: p.block_size, dropout: p.dropout },
      optimizer: { weight_decay: p.weight_decay, beta1: p.beta1, beta2: p.beta2, grad_clip: p.grad_clip },
      seed: 1,
      micro_batch_size: shape.batch_size
    }
    const trainer = yield* Effect.flatMap(Model, (m) => m.create(spec))
    let rng: RngState = deriveSeed(1, "bench")
    const batch = (size: number): Batch => {
      const [b, next] = sampleBatch(corpus, size, p.block_size, rng)
      rng = next
      return b
    }
    const timed = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.gen(function* () {
        const start = performance.now()
        yield* effect
        return (performance.now() - start) / 1000
      })
    const tokens = shape.batch_size * p.block_size

    yield* trainer.trainStep(batch(shape.batch_size), 1e-3)
    const liveBefore = trainer.liveTensors()
    const train: Array<number> = []
    for (let i = 1; i < warmup + steps; i++) {
      const seconds = yield* timed(trainer.trainStep(batch(shape.batch_size), 1e-3))
      if (i >= warmup) train.push(seconds)
    }
    const evalBatches = cpu ? 2 : 10
    const evals: Array<number> = []
    for (let i = 0; i <= evalBatches; i++) {
      const seconds = yield* timed(trainer.evalLoss(batch(shape.batch_size)))
      if (i > 0) evals.push(seconds)
    }
    // The preset's full batch through micro-batches of batch_size, one step.
    const accumulation =
      shape.accumulate_to === undefined || !accumulate
        ? null
        : yield* Effect.map(timed(trainer.trainStep(batch(shape.accumulate_to), 1e-3)), (seconds) => ({
            batch_size: shape.accumulate_to!,
            micro_batch_size: shape.batch_size,
            seconds,
            train_tokens_per_s: (shape.accumulate_to! * p.block_size) / seconds
          }))
    const trainRate = tokens / median(train)
    const evalRate = tokens / median(evals)
    // Per eval_interval steps, eval_iters batches on each of the two splits.
    const evalSeconds = (2 * p.eval_iters * p.batch_size * p.block_size) / evalRate
    const trainSeconds = (p.eval_interval * p.batch_size * p.block_size) / trainRate
    return {
      backend: trainer.info.backend,
      description: trainer.info.description,
      train_tokens_per_s: trainRate,
      eval_tokens_per_s: evalRate,
      train_steps: train.length,
      eval_batches: evals.length,
      eval_share: evalSeconds / (evalSeconds + trainSeconds),
      ...(accumulation === null ? {} : { accumulation }),
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      live_tensors: { before: liveBefore, after: trainer.liveTensors() }
    }
  }).pipe(Effect.scoped, Effect.provide(TfjsModel.layer({ backend })))

// ---------------------------------------------------------------------------
// Parent.

const runChild = (job: ChildJob): Record<string, unknown> => {
  const started = performance.now()
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--child", JSON.stringify(job)], {
    encoding: "utf8",
    timeout: CHILD_TIMEOUT_MS,
    maxBuffer: 16 << 20,
    stdio: ["ignore", "pipe", "inherit"]
  })
  log(`${job.shape.name} on ${job.backend}: ${((performance.now() - started) / 1000).toFixed(0)} s`)
  if (child.error !== undefined || child.status !== 0) {
    const why = child.signal === "SIGTERM" ? `timed out after ${CHILD_TIMEOUT_MS / 1000} s` : `failed (${child.error?.message ?? `exit ${child.status}`})`
    return { skipped: why }
  }
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>
}

const hasTorch = (): boolean =>
  existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" }).status === 0

/** Install Debian's torch and OpenBLAS when root with apt-get (without OpenBLAS torch uses a reference BLAS, many times slower). */
const ensureTorch = (): boolean => {
  if (hasTorch()) return true
  if (process.getuid?.() !== 0 || spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status !== 0) return false
  log("installing python3-torch and libopenblas0-pthread with apt-get")
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
  spawnSync("apt-get", ["install", "-y", "-qq", "python3-torch", "libopenblas0-pthread"], { stdio: ["ignore", "ignore", "inherit"], env })
  return hasTorch()
}

interface TorchResult {
  readonly threads: number
  readonly train_tokens_per_s: number
  readonly eval_tokens_per_s: number
}

/** The PyTorch step at torch's 1 and 2 threads; the best of them. */
const runTorch = (shape: Shape) => {
  const p = preset(shape.name)
  const [warmup, steps] = shape.steps
  const config = {
    n_layer: p.n_layer, n_head: p.n_head, n_embd: p.n_embd, block_size: p.block_size, dropout: p.dropout,
    vocab_size: VOCAB, batch_size: shape.batch_size, warmup, steps: 2 * steps, eval_steps: 5, threads: [1, 2]
  }
  const started = performance.now()
  try {
    const out = execFileSync(PYTHON, [fileURLToPath(new URL("torch_gpt.py", import.meta.url)), JSON.stringify(config)], {
      encoding: "utf8",
      timeout: CHILD_TIMEOUT_MS,
      stdio: ["ignore", "pipe", "inherit"]
    })
    const report = JSON.parse(out.trim().split("\n").at(-1)!) as { torch: string; blas: Array<string>; results: Array<TorchResult> }
    const best = report.results.reduce((a, b) => (b.train_tokens_per_s > a.train_tokens_per_s ? b : a))
    log(`${shape.name} on PyTorch: ${((performance.now() - started) / 1000).toFixed(0)} s`)
    return { ...report, best }
  } catch (e) {
    return { skipped: `bench/torch_gpt.py failed: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** Median µs of the Q-learning agent's onEval over evaluations past its warmup (cpu preset). */
const decisionTime = () => {
  const p = preset("cpu")
  const policy = qlearningPolicy(QLearningSettings.make({ kind: "qlearning" }), p, 1)
  let state = policy.initial
  const micros: Array<number> = []
  for (let k = 0; k < 2000; k++) {
    const iter = p.warmup_iters + k * p.eval_interval
    const val = 1.5 + 2 / (1 + k / 50) + 0.01 * Math.sin(k)
    const obs = { iter, train_loss: val - 0.05, val_loss: val, lr: policy.lrAt(state, iter) }
    const start = performance.now()
    state = policy.onEval(state, obs).state
    micros.push((performance.now() - start) * 1000)
  }
  return { decision_us_median: median(micros), decisions: micros.length }
}

/** The backends to measure: wasm-blas when its addon loads, wasm, cpu, tensorflow when a node package loads. */
const backendsOf = (autoBackend: string): ReadonlyArray<BackendChoice | { readonly skipped: BackendChoice; readonly why: string }> => {
  const blas = loadBlas()
  return [
    blas._tag === "Loaded" ? "wasm-blas" : { skipped: "wasm-blas", why: blas.reason },
    "wasm",
    "cpu",
    autoBackend === "tensorflow" ? "tensorflow" : { skipped: "tensorflow", why: "neither @tensorflow/tfjs-node nor -gpu is installed and usable" }
  ]
}

const parent = Effect.gen(function* () {
  const loadStart = os.loadavg()
  const torch = ensureTorch()
  const auto = yield* selectBackend("auto")
  log(`auto backend: ${auto.backend} (${auto.description})`)
  const prepare = yield* benchPrepare()
  const agent = decisionTime()
  const results = shapes.map((shape) => {
    const p = preset(shape.name)
    const backends = Object.fromEntries(
      backendsOf(auto.backend).map((b) =>
        typeof b === "object"
          ? [b.skipped, { skipped: b.why }]
          : b === "cpu" && shape.cpuSteps === null
            ? [b, { skipped: "the pure-JS cpu backend needs minutes per step on this shape" }]
            : [b, runChild({ shape, backend: b, accumulate: b === auto.backend })]
      )
    )
    const pytorch = torch ? runTorch(shape) : null
    const ours = backends[auto.backend] as { train_tokens_per_s?: number; eval_tokens_per_s?: number } | undefined
    const theirs = pytorch !== null && "best" in pytorch ? pytorch.best : null
    const ratio =
      theirs === null || ours?.train_tokens_per_s === undefined || ours.eval_tokens_per_s === undefined
        ? null
        : {
            backend: auto.backend,
            train: ours.train_tokens_per_s / theirs.train_tokens_per_s,
            eval: ours.eval_tokens_per_s / theirs.eval_tokens_per_s
          }
    return {
      shape: shape.name,
      model: { n_layer: p.n_layer, n_head: p.n_head, n_embd: p.n_embd, block_size: p.block_size, vocab_size: VOCAB, dropout: p.dropout },
      batch_size: shape.batch_size,
      preset_eval: { eval_interval: p.eval_interval, eval_iters: p.eval_iters, batch_size: p.batch_size },
      backends,
      pytorch,
      ratio
    }
  })
  return {
    generated_at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? null, node: process.version, loadavg_start: loadStart, loadavg_end: os.loadavg() },
    auto_backend: auto,
    prepare_mb_per_s: prepare.prepare_mb_per_s,
    prepare_input_mb: prepare.input_mb,
    agent,
    shapes: results
  }
})

const childIndex = process.argv.indexOf("--child")
const program: Effect.Effect<unknown, unknown> =
  childIndex >= 0 ? measureChild(JSON.parse(process.argv[childIndex + 1]!) as ChildJob) : parent
Effect.runPromise(program).then(
  (doc) => process.stdout.write(JSON.stringify(doc, null, childIndex >= 0 ? undefined : 2) + "\n"),
  (e) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  }
)
