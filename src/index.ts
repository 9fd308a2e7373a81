/**
 * qlr as a library: compose your own training pipelines from the pieces the
 * `qlr` command line is built of.
 *
 * - **Domain** (pure): configs and events as Effect Schemas, the LR policy
 *   interface and its implementations (schedules, the Q-learning agent),
 *   presets, variants, batches, vocabulary, statistics.
 * - **Services** (Context tags): {@link Model}, {@link DatasetReader},
 *   {@link MetricsSink} and {@link LrPolicy}. A program asks for them; a Layer
 *   provides them.
 * - **Layers** (ready implementations): {@link TfjsModel} (the real GPT on
 *   tfjs), {@link FakeModel} (a deterministic stand-in), {@link FileDatasetReader},
 *   {@link InMemoryDatasetReader},
 *   {@link JsonlMetricsSink}, {@link MemoryMetricsSink} and {@link LrPolicies}.
 * - **Programs**: {@link train} / {@link trainEvents} (training as a Stream of
 *   events), {@link estimateLoss}, {@link runTraining} (a whole run directory),
 *   {@link generateSamples} / {@link sampleFromRun}, {@link prepare},
 *   {@link runSweep} and {@link writeReport}.
 *
 * Central types are exported by name; helper modules whose names are generic
 * or would clash are exported as namespaces, in the style of effect's own
 * modules: {@link Policy}, {@link QLearning}, {@link Schedules}, {@link Rng},
 * {@link Batches}, {@link Vocabulary}, {@link Stats}, {@link Sweep} and
 * {@link Aggregate}. (`Policy.LrPolicy<S>` is the pure policy interface;
 * `LrPolicy` alone is the service tag that provides one.)
 *
 * Importing this module does not load tfjs (which takes seconds): the
 * {@link TfjsModel} layer imports it when the layer is built, and
 * {@link runSweep} / {@link writeReport} load their modules (tfjs, Vega) when
 * they run.
 *
 * The command line itself is the separate entry point `qlr/cli`.
 * @packageDocumentation
 */
import { type Context, Effect, Layer } from "effect"
import { ConfigError, ModelError } from "./domain/Errors.js"
import type { TfjsModelOptions } from "./layers/TfjsModel.js"
import type { DatasetReader } from "./services/DatasetReader.js"
import type { LrPolicy } from "./services/LrPolicy.js"
import type { MetricsSink } from "./services/MetricsSink.js"
import type { Model } from "./services/Model.js"
import type { ReportError } from "./programs/charts.js"
import type { SweepFailedError, SweepJob } from "./programs/sweep.js"

// ---------------------------------------------------------------------------
// Domain: configuration, events, errors

export { PolicyConfig, QLearningSettings, RewardKind, StateDiscretisation, TrainConfig } from "./domain/Config.js"
export {
  decodeTrainConfig,
  formatParseError,
  isDatasetName,
  type OverridableField,
  OverrideFlags,
  resolveConfig,
  type RunRequest
} from "./domain/ResolveConfig.js"
export { initialLrAblation, type PresetFields, type PresetName, PresetNames, presetFields } from "./domain/Presets.js"
export {
  isVariantName,
  type PolicyName,
  PolicyNames,
  policyFor,
  type VariantName,
  VariantNames,
  variantSettings
} from "./domain/Variants.js"
export { AgentDecision, EvalEvent, FinalInfo, StepEvent, type TrainEvent } from "./domain/Events.js"
export {
  ConfigError,
  DatasetError,
  DivergedError,
  InterruptedError,
  ModelError,
  SinkError,
  StateFileError
} from "./domain/Errors.js"

// ---------------------------------------------------------------------------
// Domain: helper modules as namespaces

/**
 * The pure LR policy interface (`Policy.LrPolicy<S>`: a state, `lrAt` and
 * `onEval`) and the schedule policies (`constantPolicy`, `cosinePolicy`,
 * `expDecayPolicy`). Provide a policy to the training stream with
 * `Layer.succeed(LrPolicy, policy)`.
 */
export * as Policy from "./domain/Policy.js"
/**
 * The tabular Q-learning LR controller (`qlearningPolicy`, `randomPolicy`),
 * its state (`AgentState`), its building blocks (state keys, rewards, the
 * Bellman update, epsilon-greedy choice) and agent files
 * (`encodeAgentFile`, `decodeAgentFile`, `withLoadedTable`).
 */
export * as QLearning from "./domain/QLearning.js"
/** The learned Q-table as a readable report (`renderAgentReport`), as `qlr inspect-agent` prints it. */
export * as AgentReport from "./domain/AgentReport.js"
/** LR schedules as pure functions of the iteration: `warmupCosineLr`, `inWarmup`, `clampLr`. */
export * as Schedules from "./domain/Schedules.js"
/** The pure, seedable generator (mulberry32) every random draw of qlr comes from. */
export * as Rng from "./domain/Rng.js"
/** Random training windows (`sampleBatch`) and micro-batches (`splitBatch`). */
export * as Batches from "./domain/Batches.js"
/** Corpus to tokens and back: dataset names, vocabularies, encoding, decoding, split sizes. */
export * as Vocabulary from "./domain/Vocabulary.js"
/** Means, standard errors, Student's t and the paired t-test the reports rest on. */
export * as Stats from "./domain/Stats.js"
/** Sweep files (`SweepSpec`, `decodeSweepSpec`) and their expansion into runs (`expandSweep`, `configHash`). */
export * as Sweep from "./domain/Sweep.js"
/** From a sweep's runs to the report's numbers: aggregates over seeds, baseline comparisons, curves. */
export * as Aggregate from "./domain/Aggregate.js"

// ---------------------------------------------------------------------------
// Services

export { DatasetReader, type Encoding, type PreparedDataset } from "./services/DatasetReader.js"
export { LrPolicy } from "./services/LrPolicy.js"
export { MetricsSink } from "./services/MetricsSink.js"
export {
  type BackendInfo,
  type GenerateOptions,
  Model,
  type ModelShape,
  type ModelSnapshot,
  type ModelSpec,
  type OptimizerSettings,
  type Trainer
} from "./services/Model.js"

/** What a {@link Model} layer provides: `create`, which builds a {@link Trainer} for a {@link ModelSpec}. */
export type ModelService = Context.Tag.Service<Model>
/** What a {@link DatasetReader} layer provides: `load`, from a dataset name to a {@link PreparedDataset}. */
export type DatasetReaderService = Context.Tag.Service<DatasetReader>
/** What a {@link MetricsSink} layer provides: `write`, called with every {@link EvalEvent}. */
export type MetricsSinkService = Context.Tag.Service<MetricsSink>
/** What an {@link LrPolicy} layer provides: a pure policy (`Policy.LrPolicy`) with its state type hidden. */
export type LrPolicyService = Context.Tag.Service<LrPolicy>

// ---------------------------------------------------------------------------
// Layers

export { defaultLandscape, type FakeLandscape, fakeExpectedLoss, FakeModel } from "./layers/FakeModel.js"
export { type CachedDataset, FileDatasetReader, type FileDatasetReaderOptions } from "./layers/FileDatasetReader.js"
export { InMemoryDatasetReader } from "./layers/InMemoryDatasetReader.js"
export type { ExpectedContent } from "./layers/download.js"
export { JsonlMetricsSink, MemoryMetricsSink } from "./layers/JsonlMetricsSink.js"
export { LrPolicies, policyOfConfig } from "./layers/LrPolicies.js"
export type { TfjsModelOptions } from "./layers/TfjsModel.js"
export type { BackendChoice } from "./layers/tfjsBackend.js"
export type { Formulation } from "./layers/gpt.js"

/**
 * The {@link Model} service on tfjs: nanoGPT's GPT with AdamW, on the chosen
 * backend (a {@link BackendChoice}: `auto`, `wasm`, `cpu`, `tensorflow`, ...).
 *
 * This is a lazy front of the layer: tfjs (which takes seconds to import) is
 * loaded when the layer is built, not when `qlr` is imported, so programs
 * that only use {@link FakeModel} never pay for it.
 */
export const TfjsModel: {
  /** The Model service on the chosen tfjs backend; building it imports tfjs and initialises the backend. */
  readonly layer: (options: TfjsModelOptions) => Layer.Layer<Model, ModelError>
} = {
  layer: (options) =>
    Layer.unwrapEffect(
      Effect.tryPromise({
        try: () => import("./layers/TfjsModel.js"),
        catch: (e) => new ModelError({ message: `cannot load tfjs: ${e instanceof Error ? e.message : String(e)}` })
      }).pipe(Effect.map(({ TfjsModel }) => TfjsModel.layer(options)))
    )
}

// ---------------------------------------------------------------------------
// Programs

export {
  estimateLoss,
  evalSplitOf,
  initialLoopState,
  type LoopState,
  modelSpecOf,
  train,
  trainEvents,
  type TrainStreamOptions
} from "./programs/train.js"
export { evalLine, type RunError, type RunJob, runTraining, stepLine } from "./programs/run.js"
export { defaultPrompt, generateSamples, inferenceDefaults, type SampleOptions, sampleFromRun } from "./programs/sample.js"
export { formatPrepareSummary, prepare, type PrepareSummary } from "./programs/prepare.js"
export type { ReportError } from "./programs/charts.js"
export type { SweepFailedError, SweepJob } from "./programs/sweep.js"

/** What {@link runSweep} did: runs planned, run now, and skipped because an earlier sweep finished them. */
export interface SweepSummary {
  /** Runs the sweep file expands to. */
  readonly planned: number
  /** Runs started by this call. */
  readonly ran: number
  /** Runs already done (their final_info.json reads back) and skipped. */
  readonly skipped: number
}

/**
 * `qlr sweep`: run every (dataset, variant, seed) of a sweep file as a child
 * `qlr run`, `jobs` at a time, then write the per-variant aggregates. Fails
 * with {@link SweepFailedError} (after every run has had its turn) if any run
 * failed. Its module (which loads tfjs) is imported when the effect runs.
 */
export const runSweep = (job: SweepJob): Effect.Effect<SweepSummary, ConfigError | SweepFailedError> =>
  Effect.flatMap(
    Effect.promise(() => import("./programs/sweep.js")),
    (m) => m.runSweep(job)
  )

/** The files {@link writeReport} wrote. */
export interface ReportFiles {
  /** report.md */
  readonly markdown: string
  /** report.html: self-contained, figures inline. */
  readonly html: string
  /** comparisons.json: every variant's paired comparison with the baseline. */
  readonly comparisons: string
  /** figures/*.svg */
  readonly figures: ReadonlyArray<string>
}

/**
 * `qlr report DIR`: write report.md, report.html, figures/*.svg,
 * comparisons.json and the per-variant aggregates of a sweep directory. Its
 * module (which loads Vega and tfjs) is imported when the effect runs.
 */
export const writeReport = (dir: string): Effect.Effect<ReportFiles, ConfigError | ReportError> =>
  Effect.flatMap(
    Effect.promise(() => import("./programs/report.js")),
    (m) => m.writeReport(dir)
  )
