/**
 * `qlr sweep`: run every (dataset, variant, seed) of a sweep file as a child
 * `qlr run`, `jobs` at a time, and aggregate the results.
 *
 * Layout of the sweep directory:
 * - `sweep.json`: the sweep file as decoded, and its planned runs (hash, dataset, variant, seed);
 * - `configs/<hash>.json`: each run's resolved config, what the child runs;
 * - `runs/<hash>/`: each run's directory (config.json, events.jsonl, final_info.json, model.bin)
 *   and `sweep_record.json`: how the sweep ran it (exit code, jobs, shared machine, error);
 * - `<variant>/final_info.json`: the aggregate over seeds, keyed by dataset (the published layout).
 *
 * A run is done when its final_info.json reads back (a diverged run is a
 * result); a rerun of the sweep skips done runs and reruns the others from
 * scratch.
 * @since 0.1.0
 */
import { Clock, Console, Data, Effect, Either, Option, Ref, Schema } from "effect"
import { spawn } from "node:child_process"
import { readFile, rm, stat } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import {
  aggregateSweep,
  CurveEvent,
  RecordedFinalInfo,
  type RunResult,
  type RunStatus
} from "../domain/Aggregate.js"
import { TrainConfig } from "../domain/Config.js"
import { ConfigError } from "../domain/Errors.js"
import { decodeTrainConfig } from "../domain/ResolveConfig.js"
import { decodeSweepSpec, expandSweep, SweepSpec, type PlannedRun } from "../domain/Sweep.js"
import { jsonText, writeFileAtomic } from "../layers/files.js"
import { BackendChoices, messageOf } from "../layers/backendChoices.js"
import { inferenceDefaults } from "./sample.js"

/** The backends a sweep may name: `qlr run --backend`'s. */
export const SweepBackends = [...BackendChoices, "fake"] as const

/** Some runs of the sweep failed; the others ran to the end. */
export class SweepFailedError extends Data.TaggedError("SweepFailedError")<{ readonly message: string }> {}

const qlrBin = fileURLToPath(new URL("../../bin/qlr.js", import.meta.url))

/** Where a sweep keeps each file. */
export const sweepPaths = (dir: string) => ({
  manifest: join(dir, "sweep.json"),
  config: (hash: string) => join(dir, "configs", `${hash}.json`),
  run: (hash: string) => join(dir, "runs", hash),
  record: (hash: string) => join(dir, "runs", hash, "sweep_record.json"),
  aggregate: (variant: string) => join(dir, variant, "final_info.json")
})

const PlannedRunEntry = Schema.Struct({
  hash: Schema.String,
  dataset: Schema.String,
  variant: Schema.String,
  seed: Schema.Number
})

/** `sweep.json`: what the sweep was asked to run. */
export const SweepManifest = Schema.Struct({
  sweep_file: Schema.String,
  spec: SweepSpec,
  runs: Schema.Array(PlannedRunEntry)
})
export type SweepManifest = typeof SweepManifest.Type

/** `sweep_record.json`: how the sweep ran one run. */
export const SweepRecord = Schema.Struct({
  status: Schema.Literal("finished", "diverged", "failed"),
  exit_code: Schema.Number,
  jobs: Schema.Number,
  /** Other runs of the sweep trained at the same time, so its timings are not a dedicated machine's. */
  shared_machine: Schema.Boolean,
  started_at: Schema.String,
  wall_seconds: Schema.Number,
  /** The end of the child's output when it failed. */
  error: Schema.NullOr(Schema.String)
})
export type SweepRecord = typeof SweepRecord.Type

/** The facts of config.json's `run` block the report states. */
const RunBlock = Schema.Struct({
  backend: Schema.String,
  gpu: Schema.Boolean,
  versions: Schema.Struct({ qlr: Schema.NullOr(Schema.String), git_commit: Schema.NullOr(Schema.String) })
})
export type RunBlock = typeof RunBlock.Type

/** One planned run with whatever it has on disk. */
export interface LoadedRun extends RunResult {
  readonly hash: string
  readonly config: TrainConfig | null
  readonly run: RunBlock | null
  readonly record: SweepRecord | null
}

const readText = (path: string) => Effect.promise(() => readFile(path, "utf8").then(Option.some, () => Option.none<string>()))
const parseJson = (text: string) => Either.getRight(Either.try(() => JSON.parse(text) as unknown))
/** Decode by `schema`, ignoring fields it does not name; none when the value does not fit. */
const decodeAs = <A, I>(schema: Schema.Schema<A, I>) => (json: unknown) =>
  Either.getRight(Schema.decodeUnknownEither(schema)(json, { onExcessProperty: "ignore" }))

/** A JSON file decoded by `schema`; none when absent or unreadable. */
const readJsonAs = <A, I>(path: string, schema: Schema.Schema<A, I>) =>
  Effect.map(readText(path), Option.flatMap((text) => Option.flatMap(parseJson(text), decodeAs(schema))))

/** A run directory's final_info.json, present once the run is done (finished or diverged). */
const readFinalInfo = (runDir: string) => readJsonAs(join(runDir, "final_info.json"), RecordedFinalInfo)

const readEvents = (runDir: string) =>
  Effect.map(readText(join(runDir, "events.jsonl")), (text) =>
    Option.getOrElse(text, () => "").split("\n").flatMap((line) => Option.toArray(Option.flatMap(parseJson(line), decodeAs(CurveEvent)))))

const readRunConfig = (runDir: string) =>
  Effect.map(readText(join(runDir, "config.json")), Option.flatMap((text) =>
    Option.flatMap(parseJson(text), (json) =>
      Option.all({
        config: Either.getRight(decodeTrainConfig(json)),
        run: Option.map(decodeAs(Schema.Struct({ run: RunBlock }))(json), (c) => c.run)
      }))))

const statusOf = (final: Option.Option<RecordedFinalInfo>, record: Option.Option<SweepRecord>): RunStatus =>
  Option.match(final, {
    onSome: (f) => (f.diverged === true ? "diverged" : "finished"),
    onNone: () => (Option.isSome(record) && record.value.status === "failed" ? "failed" : "missing")
  })

/** Read everything a planned run has on disk. */
export const loadRun = (dir: string, planned: typeof PlannedRunEntry.Type): Effect.Effect<LoadedRun> =>
  Effect.gen(function*() {
    const paths = sweepPaths(dir)
    const runDir = paths.run(planned.hash)
    const final = yield* readFinalInfo(runDir)
    const record = yield* readJsonAs(paths.record(planned.hash), SweepRecord)
    const config = yield* readRunConfig(runDir)
    return {
      ...planned,
      status: statusOf(final, record),
      final: Option.getOrNull(final),
      events: yield* readEvents(runDir),
      config: Option.match(config, { onNone: () => null, onSome: (c) => c.config }),
      run: Option.match(config, { onNone: () => null, onSome: (c) => c.run }),
      record: Option.getOrNull(record)
    }
  })

/** Read a sweep directory's manifest and every planned run. */
export const loadSweep = (dir: string) =>
  Effect.gen(function*() {
    const manifest = yield* readJsonAs(sweepPaths(dir).manifest, SweepManifest).pipe(
      Effect.flatMap(
        Option.match({
          onNone: () =>
            Effect.fail(new ConfigError({ message: `${dir} is not a sweep directory (no readable sweep.json): run \`qlr sweep SPEC.json --out ${dir}\` first` })),
          onSome: Effect.succeed
        })
      )
    )
    const runs = yield* Effect.forEach(manifest.runs, (planned) => loadRun(dir, planned))
    return { manifest, runs }
  })

/** Write each variant's aggregate `final_info.json`. */
export const writeAggregates = (dir: string, runs: ReadonlyArray<RunResult>) =>
  Effect.forEach(
    Object.entries(aggregateSweep(runs)),
    ([variant, byDataset]) => writeFileAtomic(sweepPaths(dir).aggregate(variant), jsonText(byDataset), (message) => new ConfigError({ message })),
    { discard: true }
  )

const readSweepFile = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (e) => new ConfigError({ message: `cannot read sweep file ${path}: ${messageOf(e)}` })
  }).pipe(
    Effect.flatMap((text) =>
      Either.try({
        try: () => JSON.parse(text) as unknown,
        catch: (e) => new ConfigError({ message: `sweep file ${path} is not valid JSON: ${messageOf(e)}` })
      })
    ),
    Effect.flatMap((json) => decodeSweepSpec(json, path))
  )

/** What `qlr sweep` was asked to do; command-line settings win over the sweep file's. */
export interface SweepJob {
  readonly sweepFile: string
  readonly outDir: string
  readonly jobs: number
  readonly backend?: string | undefined
  readonly dataDir?: string | undefined
  readonly cacheDir?: string | undefined
}

/** The child `qlr run`'s exit code and the end of its output. */
const runChild = (args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number; readonly output: string }>((resume) => {
    const child = spawn(process.execPath, [qlrBin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-4000)
    }
    child.stdout.on("data", keep)
    child.stderr.on("data", keep)
    child.on("error", (e) => resume(Effect.succeed({ code: -1, output: `cannot start ${qlrBin}: ${e.message}` })))
    child.on("close", (code, signal) =>
      resume(Effect.succeed({ code: code ?? -1, output: signal === null ? output : `${output}\nkilled by ${signal}` })))
    // Interrupting the sweep (Ctrl-C) stops its children too.
    return Effect.sync(() => child.kill("SIGTERM"))
  })

const exists = (path: string) => Effect.promise(() => stat(path).then(() => true, () => false))

const describeRun = (r: PlannedRun) => `${r.dataset} / ${r.variant} / seed ${r.seed}`

/** Run a sweep; fails with SweepFailedError, after every run has had its turn, if any failed. */
export const runSweep = (job: SweepJob) =>
  Effect.gen(function*() {
    const spec = yield* readSweepFile(job.sweepFile)
    const backend = job.backend ?? spec.backend ?? "auto"
    if (!(SweepBackends as ReadonlyArray<string>).includes(backend))
      return yield* new ConfigError({ message: `sweep file ${job.sweepFile}: unknown backend '${backend}': use one of ${SweepBackends.join(", ")}` })
    if (!Number.isInteger(job.jobs) || job.jobs < 1)
      return yield* new ConfigError({ message: `--jobs must be a positive integer (got ${job.jobs})` })
    const planned = yield* expandSweep(spec)
    const paths = sweepPaths(job.outDir)
    const writeError = (message: string) => new ConfigError({ message })
    // A run's hash covers its config, not the backend: never count fake-model runs as real ones, or the reverse.
    const otherModel = yield* Effect.filter(planned, (r) =>
      Effect.map(readRunConfig(paths.run(r.hash)), Option.exists((c) => (c.run.backend === "fake") !== (backend === "fake"))))
    if (otherModel.length > 0) {
      return yield* new ConfigError({
        message: `${job.outDir} holds ${otherModel.length} run(s) trained ${backend === "fake" ? "on a real model" : "on the fake model"} ` +
          `(e.g. runs/${otherModel[0]!.hash}), but this sweep uses backend ${backend}: use another --out`
      })
    }

    yield* writeFileAtomic(
      paths.manifest,
      jsonText({
        sweep_file: job.sweepFile,
        spec: Schema.encodeSync(SweepSpec)(spec),
        runs: planned.map(({ hash, dataset, variant, seed }) => ({ hash, dataset, variant, seed }))
      }),
      writeError
    )
    yield* Effect.forEach(planned, (r) => writeFileAtomic(paths.config(r.hash), jsonText(Schema.encodeSync(TrainConfig)(r.config)), writeError), {
      discard: true
    })

    const done = yield* Effect.filter(planned, (r) => Effect.map(readFinalInfo(paths.run(r.hash)), Option.isSome))
    const doneHashes = new Set(done.map((r) => r.hash))
    const todo = planned.filter((r) => !doneHashes.has(r.hash))
    const unfinished = yield* Effect.filter(todo, (r) => exists(paths.run(r.hash)))
    // A run directory without final_info.json was interrupted or failed: start it again from nothing.
    yield* Effect.forEach(unfinished, (r) => Effect.promise(() => rm(paths.run(r.hash), { recursive: true, force: true })), { discard: true })

    const concurrency = Math.min(job.jobs, Math.max(1, todo.length))
    const shared = concurrency > 1
    yield* Console.log(
      `qlr sweep ${job.outDir}: planned ${planned.length}; done earlier (skipped) ${done.length}; unfinished (rerun) ${unfinished.length}; running ${todo.length}, ${concurrency} at a time${shared ? " (timings marked as sharing the machine)" : ""}`
    )

    const sampling = spec.sampling ?? inferenceDefaults
    const dataDir = job.dataDir ?? spec.data_dir
    const completed = yield* Ref.make(0)
    const runOne = (r: PlannedRun) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const child = yield* runChild([
          "run", "--config", paths.config(r.hash), "--out", paths.run(r.hash), "--quiet",
          "--variant", r.variant, "--backend", backend,
          "--sample-count", String(sampling.count), "--sample-tokens", String(sampling.tokens),
          ...(dataDir === undefined ? [] : ["--data-dir", dataDir]),
          ...(job.cacheDir === undefined ? [] : ["--cache-dir", job.cacheDir])
        ])
        const wallSeconds = ((yield* Clock.currentTimeMillis) - started) / 1000
        const final = yield* readFinalInfo(paths.run(r.hash))
        // `qlr run` exits non-zero on divergence after writing final_info.json: that is a result, not a failure.
        const status = Option.match(final, {
          onNone: () => "failed" as const,
          onSome: (f) => (f.diverged === true ? "diverged" as const : "finished" as const)
        })
        const error = status === "failed"
          ? (child.output.trim() || `exit code ${child.code}`) + (child.code === 0 ? " (exited 0 but wrote no final_info.json)" : "")
          : null
        const record: SweepRecord = {
          status,
          exit_code: child.code,
          jobs: job.jobs,
          shared_machine: shared,
          started_at: new Date(started).toISOString(),
          wall_seconds: wallSeconds,
          error
        }
        yield* writeFileAtomic(paths.record(r.hash), jsonText(record), writeError)
        const n = yield* Ref.updateAndGet(completed, (k) => k + 1)
        const outcome = Option.match(final, {
          onNone: () => `FAILED (exit ${child.code})`,
          onSome: (f) =>
            f.diverged === true
              ? `diverged at iteration ${f.diverged_iter ?? "?"} (a result, not a failure)`
              : `best val ${f.best_val_loss?.toFixed(4) ?? "n/a"}, ${f.total_train_time?.toFixed(1) ?? "?"} s training`
        })
        yield* Console.log(`[${n}/${todo.length}] ${describeRun(r)}: ${outcome} (runs/${r.hash})`)
        return { run: r, record }
      })
    const outcomes = yield* Effect.forEach(todo, runOne, { concurrency })

    const { runs } = yield* loadSweep(job.outDir)
    yield* writeAggregates(job.outDir, runs)
    const count = (status: RunStatus) => runs.filter((r) => r.status === status).length
    yield* Console.log(
      `qlr sweep: ${count("finished")} finished, ${count("diverged")} diverged, ${count("failed")} failed; aggregates in ${join(job.outDir, "<variant>", "final_info.json")}; next: qlr report ${job.outDir}`
    )
    const failed = outcomes.filter((o) => o.record.status === "failed")
    if (failed.length > 0) {
      return yield* new SweepFailedError({
        message: `${failed.length} of ${todo.length} runs failed (the others ran to the end; rerun the sweep to retry them):\n` +
          failed.map((o) => `- ${describeRun(o.run)} (runs/${o.run.hash}): ${o.record.error}`).join("\n")
      })
    }
    return { planned: planned.length, ran: todo.length, skipped: done.length }
  })
