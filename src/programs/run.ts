/**
 * `qlr run`: train one model under one LR policy and write the run
 * directory: config.json, events.jsonl (through the MetricsSink), a
 * checkpoint at every evaluation, final_info.json, the final weights
 * (model.bin) and, on request, the agent's table. Resumes from the
 * checkpoint, stops cleanly on Ctrl-C, and stops or rolls back on divergence.
 * @since 0.1.0
 */
import { Console, Effect, Ref, Stream } from "effect"
import { existsSync } from "node:fs"
import { readdir, readFile, writeFile } from "node:fs/promises"
import { join } from "node:path"
import type { TrainConfig } from "../domain/Config.js"
import {
  ConfigError,
  type DatasetError,
  type DivergedError,
  InterruptedError,
  type ModelError,
  type SinkError,
  StateFileError
} from "../domain/Errors.js"
import { FinalInfo, type EvalEvent, type StepEvent } from "../domain/Events.js"
import type { AnyLrPolicy } from "../domain/Policy.js"
import { decodeAgentFile, encodeAgentFile, withLoadedTable, type AgentState } from "../domain/QLearning.js"
import { jsonText, writeFileAtomic } from "../layers/files.js"
import { policyOfConfig } from "../layers/LrPolicies.js"
import { DatasetReader, type PreparedDataset } from "../services/DatasetReader.js"
import { LrPolicy } from "../services/LrPolicy.js"
import { MetricsSink } from "../services/MetricsSink.js"
import { Model, type Trainer } from "../services/Model.js"
import { checkpointPath, restoreCheckpoint, writeCheckpoint, type Resumed } from "./checkpoint.js"
import { codeVersions } from "./runInfo.js"
import { defaultPrompt, generateSamples, inferenceDefaults, type SampleOptions } from "./sample.js"
import { writeSnapshot } from "./snapshotFile.js"
import { evalSplitOf, initialLoopState, modelSpecOf, trainEvents, type LoopState } from "./train.js"

/** What `qlr run` was asked to do. */
export interface RunJob {
  readonly config: TrainConfig
  readonly outDir: string
  /** Continue the run in `outDir` from its last checkpoint (`--resume`). */
  readonly resume?: boolean
  /** Start the agent from a saved table (`--q-table-in`). */
  readonly agentIn?: string | undefined
  /** Save the agent's final table (`--q-table-out`). */
  readonly agentOut?: string | undefined
  /** Inference measurement; SPEC §4's by default. */
  readonly sampling?: SampleOptions
  /** Fail unless a GPU device is really in use (`--require-gpu`). */
  readonly requireGpu?: boolean
  /** Print progress and evaluation lines. */
  readonly verbose?: boolean
  /** The variant name, when the run is one of a sweep's. */
  readonly variant?: string | undefined
  /** Write a checkpoint every this many evaluations; 0: never (no resume, no rollback). */
  readonly checkpointEvery?: number
  /** Stop at the next step boundary on SIGINT, writing a checkpoint. */
  readonly handleSigint?: boolean
}

/** Every way {@link runTraining} can fail; each error carries a readable message. */
export type RunError =
  | ConfigError
  | DatasetError
  | ModelError
  | SinkError
  | StateFileError
  | DivergedError
  | InterruptedError

const eventsPath = (outDir: string) => join(outDir, "events.jsonl")

/** Refuse an `--out` that exists and is not empty, so no earlier run is mixed with this one. */
export const checkOutDir = (outDir: string) =>
  Effect.promise(() => readdir(outDir).then((entries) => entries.length, () => 0)).pipe(
    Effect.filterOrFail(
      (entries) => entries === 0,
      () =>
        new ConfigError({
          message: `output directory ${outDir} already exists and is not empty: choose a new --out, remove it, or continue it with --resume ${outDir}`
        })
    )
  )

const checkResumable = (outDir: string) =>
  existsSync(join(outDir, "final_info.json"))
    ? Effect.fail(new ConfigError({ message: `--resume ${outDir}: the run has already finished (final_info.json exists)` }))
    : existsSync(checkpointPath(outDir))
    ? Effect.void
    : Effect.fail(new ConfigError({ message: `--resume ${outDir}: no checkpoint there; start the run again with a new --out` }))

const refuseTestSplit = (config: TrainConfig, data: PreparedDataset) =>
  config.eval_split === "test" && data.test === null
    ? Effect.fail(
      new ConfigError({
        message: `--eval-split test: dataset ${config.dataset} has no test split (only train and val); use --eval-split val`
      })
    )
    : Effect.void

/** Batches are windows of block_size + 1 tokens of a split: refuse a split too short for one. */
const refuseShortSplits = (config: TrainConfig, data: PreparedDataset) => {
  const splits = [["train", data.train], [config.eval_split, evalSplitOf(config, data)]] as const
  const short = splits.find(([, tokens]) => tokens.length <= config.block_size)
  return short === undefined
    ? Effect.void
    : Effect.fail(
      new ConfigError({
        message: `dataset ${config.dataset}: its ${short[0]} split has ${short[1].length} tokens, too few for one window of ` +
          `block_size ${config.block_size} (it needs at least ${config.block_size + 1}); use a smaller --block-size or a longer corpus`
      })
    )
}

const loadAgent = (config: TrainConfig, path: string) =>
  Effect.gen(function*() {
    if (config.policy.kind !== "qlearning")
      return yield* new ConfigError({ message: `--q-table-in needs an agent policy, but this run's policy is ${config.policy.kind}` })
    const text = yield* Effect.tryPromise({
      try: () => readFile(path, "utf8"),
      catch: (e) => new StateFileError({ message: `cannot read --q-table-in ${path}: ${e instanceof Error ? e.message : String(e)}` })
    })
    const loaded = yield* decodeAgentFile(text, path)
    return yield* withLoadedTable(config.policy, config, config.seed, loaded)
  })

/** The evaluations a checkpoint covers: the first `count` lines of events.jsonl; later lines are cut. */
const keepEvents = (outDir: string, count: number) =>
  Effect.promise(async () => {
    const path = eventsPath(outDir)
    const lines = existsSync(path) ? (await readFile(path, "utf8")).split("\n").filter((l) => l.length > 0) : []
    const kept = lines.slice(0, count)
    await writeFile(path, kept.map((l) => l + "\n").join(""))
    return kept.map((l) => JSON.parse(l) as EvalEvent)
  })

/** The policy with every LR multiplied by `scale` (after divergence rollbacks). */
const scaledPolicy = (policy: AnyLrPolicy, scale: number): AnyLrPolicy =>
  scale === 1 ? policy : { ...policy, lrAt: (state, iter) => scale * policy.lrAt(state, iter) }

const fmt = (x: number, digits = 4) => (Number.isFinite(x) ? x.toFixed(digits) : String(x))
/** A duration for the progress line: 59s, 2m00s, 1h05m (rounded to the second first, so never "1m60s"). */
export const formatDuration = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  const pad = (n: number) => String(n).padStart(2, "0")
  return s >= 3600 ? `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m` : s >= 60 ? `${Math.floor(s / 60)}m${pad(s % 60)}s` : `${s}s`
}

/** One line per evaluation. */
export const evalLine = (e: EvalEvent): string =>
  [
    `eval ${String(e.iter).padStart(6)}`,
    `train ${fmt(e.train_loss)}`,
    `val ${fmt(e.val_loss)}`,
    `lr ${e.lr.toExponential(3)} -> ${e.next_lr.toExponential(3)}`,
    ...(e.action === undefined
      ? []
      : [
        `action x${e.action}${e.random ? " (random)" : ""}`,
        `reward ${e.reward === null || e.reward === undefined ? "-" : fmt(e.reward)}`,
        `eps ${fmt(e.epsilon ?? 0, 3)}`
      ])
  ].join(" | ")

/** The progress line between evaluations. */
export const stepLine = (e: StepEvent, maxIters: number): string =>
  `iter ${e.iter}/${maxIters} | loss ${fmt(e.loss)} | lr ${e.lr.toExponential(3)} | ${
    Math.round(e.tokens_per_second)
  } tok/s | ${formatDuration(e.elapsed)} elapsed, ${formatDuration(e.eta)} left`

const writeStderr = (text: string) => Effect.sync(() => process.stderr.write(text))

/** Show a step: rewrite one line on a terminal; elsewhere every hundredth step. */
const showStep = (e: StepEvent, config: TrainConfig) =>
  process.stderr.isTTY
    ? writeStderr(`\r${stepLine(e, config.max_iters)}\x1b[K`)
    : e.iter % 100 === 0
    ? writeStderr(stepLine(e, config.max_iters) + "\n")
    : Effect.void

/** Wait for one turn of Node's event loop (signal handlers, I/O callbacks). */
const eventLoopTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** A flag raised by the first SIGINT while the run is in scope; a second one quits at once. */
const sigintFlag = Effect.acquireRelease(
  Effect.sync(() => {
    const flag = { raised: false }
    const onSigint = () => {
      if (flag.raised) process.exit(130)
      flag.raised = true
      process.stderr.write("\nqlr: stopping at the next step boundary to write a checkpoint (Ctrl-C again quits now)\n")
    }
    process.on("SIGINT", onSigint)
    return { flag, onSigint }
  }),
  ({ onSigint }) => Effect.sync(() => process.off("SIGINT", onSigint))
).pipe(Effect.map(({ flag }) => flag))

const summaryOf = (events: ReadonlyArray<EvalEvent>) => {
  const last = events[events.length - 1]
  const finiteVals = events.map((e) => e.val_loss).filter(Number.isFinite)
  return {
    final_train_loss: last?.train_loss ?? Number.NaN,
    best_val_loss: finiteVals.length > 0 ? Math.min(...finiteVals) : Number.NaN,
    total_train_time: last?.elapsed ?? 0
  }
}

const writeConfigJson = (job: RunJob, trainer: Trainer, data: PreparedDataset) =>
  Effect.gen(function*() {
    yield* writeFileAtomic(
      join(job.outDir, "config.json"),
      jsonText({
        ...job.config,
        run: {
          variant: job.variant ?? null,
          backend: trainer.info.backend,
          backend_description: trainer.info.description,
          gpu: trainer.info.gpu,
          parameters: trainer.parameterCount,
          vocab_size: data.symbols.length,
          dataset_sha256: data.sourceSha256,
          versions: yield* codeVersions
        }
      }),
      (message) => new ConfigError({ message })
    )
  })

/** Train, log and write the run directory. A divergence is recorded in final_info.json, then fails the run. */
export const runTraining = (job: RunJob): Effect.Effect<FinalInfo, RunError, Model | DatasetReader | MetricsSink> =>
  Effect.scoped(
    Effect.gen(function*() {
      const { config, outDir } = job
      const verbose = job.verbose ?? true
      const checkpointEvery = job.checkpointEvery ?? 1
      // Everything that can be refused is checked before the first file is written.
      yield* job.resume === true ? checkResumable(outDir) : checkOutDir(outDir)
      const data = yield* Effect.flatMap(DatasetReader, (reader) => reader.load(config.dataset, config.encoding))
      yield* refuseTestSplit(config, data)
      yield* refuseShortSplits(config, data)
      const agentStart: AgentState | undefined = job.agentIn === undefined ? undefined : yield* loadAgent(config, job.agentIn)
      if (job.agentOut !== undefined && config.policy.kind !== "qlearning")
        return yield* new ConfigError({ message: `--q-table-out needs an agent policy, but this run's policy is ${config.policy.kind}` })
      const model = yield* Model
      const trainer = yield* model.create(modelSpecOf(config, data.symbols.length))
      if (job.requireGpu === true && !trainer.info.gpu)
        return yield* new ConfigError({
          message: `--require-gpu: no GPU device is in use (backend ${trainer.info.backend}: ${trainer.info.description})`
        })
      const policy = policyOfConfig(config, agentStart)

      let progress: Resumed = job.resume === true
        ? yield* restoreCheckpoint(outDir, trainer, config, policy)
        : { loop: initialLoopState(config, policy), events: 0, rollbacks: 0 }
      if (job.resume !== true) yield* writeConfigJson(job, trainer, data)
      if (verbose) {
        yield* Console.error(
          `qlr: backend ${trainer.info.backend} (${trainer.info.description}); GPU in use: ${trainer.info.gpu ? "yes" : "no"}`
        )
        yield* Console.error(
          `qlr: ${config.dataset} (${data.symbols.length} symbols, ${data.train.length} train / ${data.val.length} val tokens), ${config.preset} preset, policy ${policy.name}, ${
            (trainer.parameterCount / 1e6).toFixed(2)
          }M parameters${job.resume === true ? `, resuming at iteration ${progress.loop.iter}` : ""}`
        )
      }

      const sink = yield* MetricsSink
      const sigint = job.handleSigint === true ? yield* sigintFlag : { raised: false }
      const lastState = yield* Ref.make<LoopState>(progress.loop)
      let evals: ReadonlyArray<EvalEvent> = yield* keepEvents(outDir, progress.events)

      const onEval = (event: EvalEvent) =>
        Effect.gen(function*() {
          yield* sink.write(event)
          evals = [...evals, event]
          if (checkpointEvery > 0 && evals.length % checkpointEvery === 0) {
            yield* writeCheckpoint(outDir, trainer, config, policy, {
              loop: yield* Ref.get(lastState),
              events: evals.length,
              rollbacks: progress.rollbacks
            })
          }
          if (verbose) yield* Console.log((process.stderr.isTTY ? "\r\x1b[K" : "") + evalLine(event))
        })

      const runFrom = (from: Resumed) =>
        trainEvents(trainer, config, data, {
          from: from.loop,
          onState: (s) => Ref.set(lastState, s),
          // A step runs without returning to Node's event loop, where the SIGINT handler runs: let it in first.
          stopWhen: job.handleSigint === true ? Effect.zipRight(eventLoopTurn, Effect.sync(() => sigint.raised)) : undefined
        }).pipe(
          Stream.runForEach((event) => (event.type === "eval" ? onEval(event) : verbose ? showStep(event, config) : Effect.void)),
          Effect.provideService(LrPolicy, scaledPolicy(policy, config.rollback_lr_factor ** from.rollbacks)),
          Effect.either
        )

      let outcome = yield* runFrom(progress)
      while (
        outcome._tag === "Left" && outcome.left._tag === "DivergedError" && config.on_divergence === "rollback" &&
        progress.rollbacks < config.max_rollbacks && existsSync(checkpointPath(outDir))
      ) {
        const restored = yield* restoreCheckpoint(outDir, trainer, config, policy)
        evals = yield* keepEvents(outDir, restored.events)
        // The agent is told: its state becomes the diverged state and it is given the divergence penalty.
        const told = policy.onEval(restored.loop.policyState, {
          iter: restored.loop.iter,
          train_loss: Number.NaN,
          val_loss: Number.NaN,
          lr: restored.loop.lastLr
        })
        // The count goes on from this run's, not the checkpoint's: that one was written before the divergence.
        progress = { loop: { ...restored.loop, policyState: told.state }, events: restored.events, rollbacks: progress.rollbacks + 1 }
        if (verbose) {
          yield* Console.error(
            `qlr: ${outcome.left.message}; rolled back to iteration ${restored.loop.iter} with the LR scaled by ${
              config.rollback_lr_factor ** progress.rollbacks
            } (rollback ${progress.rollbacks} of at most ${config.max_rollbacks})`
          )
        }
        outcome = yield* runFrom(progress)
      }
      const summary = { ...summaryOf(evals), ...(progress.rollbacks > 0 ? { rollbacks: progress.rollbacks } : {}) }

      if (outcome._tag === "Left") {
        const error = outcome.left
        if (error._tag === "DivergedError") {
          yield* writeFileAtomic(
            join(outDir, "final_info.json"),
            jsonText({ ...summary, avg_inference_tokens_per_second: null, diverged: true, diverged_iter: error.iter }),
            (message) => new ConfigError({ message })
          )
        }
        return yield* error
      }

      const finalState = yield* Ref.get(lastState)
      if (sigint.raised && !(finalState.iter === config.max_iters && finalState.evaluated)) {
        yield* writeCheckpoint(outDir, trainer, config, policy, {
          loop: finalState,
          events: evals.length,
          rollbacks: progress.rollbacks
        })
        return yield* new InterruptedError({
          iter: finalState.iter,
          message: `interrupted at iteration ${finalState.iter}; checkpoint written. Continue with: qlr run --resume ${outDir}`
        })
      }

      const inference = yield* generateSamples(trainer, data, defaultPrompt(data), job.sampling ?? inferenceDefaults)
      const final = FinalInfo.make({ ...summary, avg_inference_tokens_per_second: inference.tokensPerSecond })
      yield* writeSnapshot(join(outDir, "model.bin"), yield* trainer.snapshot, { symbols: data.symbols, encoding: data.encoding })
      if (job.agentOut !== undefined) {
        yield* writeFileAtomic(
          job.agentOut,
          encodeAgentFile(finalState.policyState as AgentState),
          (message) => new StateFileError({ message })
        )
      }
      yield* writeFileAtomic(join(outDir, "final_info.json"), jsonText(final), (message) => new ConfigError({ message }))
      if (verbose) {
        yield* Console.log(
          `done: final train loss ${fmt(final.final_train_loss)}, best val loss ${fmt(final.best_val_loss)}, ${
            final.total_train_time.toFixed(1)
          } s training, ${
            final.avg_inference_tokens_per_second === null ? "n/a" : final.avg_inference_tokens_per_second.toFixed(1)
          } tokens/s sampling; wrote ${outDir}`
        )
      }
      return final
    })
  )
