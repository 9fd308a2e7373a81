/**
 * The `qlr` command line: one consumer of the library's programs.
 * Every failure ends in one readable message and a non-zero exit.
 * @since 0.1.0
 */
import { Args, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import type { TrainConfig } from "../domain/Config.js"
import { ConfigError, StateFileError } from "../domain/Errors.js"
import { renderAgentReport } from "../domain/AgentReport.js"
import { decodeAgentFile } from "../domain/QLearning.js"
import { PresetNames } from "../domain/Presets.js"
import { AgentFlags, decodeTrainConfig, OverrideFlags, resolveConfig, type OverridableField } from "../domain/ResolveConfig.js"
import { PolicyNames, VariantNames } from "../domain/Variants.js"
import { FakeModel } from "../layers/FakeModel.js"
import { FileDatasetReader } from "../layers/FileDatasetReader.js"
import { JsonlMetricsSink } from "../layers/JsonlMetricsSink.js"
import { BackendChoices } from "../layers/backendChoices.js"
import { reportCommand, sweepCommand } from "./experimentCommands.js"
import { prepare } from "./prepare.js"
import { runTraining } from "./run.js"
import { inferenceDefaults, sampleFromRun } from "./sample.js"

const described = <A>(options: Options.Options<A>, text: string) => Options.withDescription(options, text)

/** `--backend fake` trains the deterministic fake model: for trying the CLI and for tests. */
const backendNames = [...BackendChoices, "fake"] as const
type BackendName = (typeof backendNames)[number]
const backendOption = described(
  Options.text("backend").pipe(
    Options.withDefault("auto"),
    Options.mapEffect((name) =>
      (backendNames as ReadonlyArray<string>).includes(name)
        ? Effect.succeed(name as BackendName)
        : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`unknown backend '${name}': use --backend with one of ${backendNames.join(", ")}`)))
    )
  ),
  `${backendNames.join(" | ")}. auto: tfjs-node-gpu or tfjs-node when installed, else wasm-blas (wasm with native BLAS matMuls, after npm run build:native), else wasm, else cpu; fake: the deterministic test model`
)

/** tfjs takes seconds to load: only commands that train a real model import it. */
const modelLayer = (backend: BackendName) =>
  backend === "fake"
    ? FakeModel.layer()
    : Layer.unwrapEffect(
      Effect.promise(() => import("../layers/TfjsModel.js")).pipe(Effect.map(({ TfjsModel }) => TfjsModel.layer({ backend })))
    )

const dataDirOption = described(
  Options.directory("data-dir").pipe(Options.optional),
  "directory with local copies (DIR/shakespeare_char/input.txt, DIR/enwik8/enwik8[.zip], DIR/text8/text8[.zip]); default $QLR_DATA_DIR"
)
const cacheDirOption = described(
  Options.text("cache-dir").pipe(Options.optional),
  "where downloads and prepared tokens are kept; default $QLR_CACHE_DIR or ~/.cache/qlr"
)
const datasetOption = described(
  Options.text("dataset").pipe(Options.withDefault("shakespeare_char")),
  "shakespeare_char, enwik8, text8 or file:PATH"
)
const encodingOption = described(
  Options.choice("encoding", ["chars", "bytes"] as const).pipe(Options.optional),
  "chars (UTF-8 characters) or bytes (any file; vocabulary <= 256); enwik8 is always bytes"
)

const readerLayer = (dataDir: Option.Option<string>, cacheDir: Option.Option<string>) =>
  FileDatasetReader.layer({
    ...Option.match(dataDir, { onNone: () => ({}), onSome: (d) => ({ dataDir: d }) }),
    ...Option.match(cacheDir, { onNone: () => ({}), onSome: (d) => ({ cacheDir: d }) })
  })

const floatFields = new Set<OverridableField>(["dropout", "learning_rate", "min_lr", "weight_decay", "grad_clip"])
const overrideOptions = Object.fromEntries(
  (Object.keys(OverrideFlags) as Array<OverridableField>).map((field) => [
    field,
    (floatFields.has(field) ? Options.float(OverrideFlags[field]) : Options.integer(OverrideFlags[field])).pipe(
      Options.optional,
      Options.withDescription(`override the preset's ${field}`)
    )
  ])
) as { readonly [K in OverridableField]: Options.Options<Option.Option<number>> }

const agentOptions = {
  max_lr: Options.float(AgentFlags.max_lr).pipe(Options.optional, Options.withDescription("agent's upper LR bound (default 10 x peak LR)")),
  alpha: Options.float(AgentFlags.alpha).pipe(Options.optional, Options.withDescription("agent learning rate (default 0.1)")),
  gamma: Options.float(AgentFlags.gamma).pipe(Options.optional, Options.withDescription("agent discount (default 0.9)")),
  epsilon: Options.float(AgentFlags.epsilon).pipe(Options.optional, Options.withDescription("exploration rate (default 0.1)")),
  epsilon_decay: Options.float(AgentFlags.epsilon_decay).pipe(Options.optional, Options.withDescription("multiplicative epsilon decay (default 1: none)")),
  epsilon_decay_on: Options.choice(AgentFlags.epsilon_decay_on, ["random", "decision"] as const).pipe(
    Options.optional,
    Options.withDescription("decay after each random action (published) or each decision")
  ),
  epsilon_min: Options.float(AgentFlags.epsilon_min).pipe(Options.optional, Options.withDescription("epsilon floor (default 0)")),
  reward: Options.choice(AgentFlags.reward, ["neg-val", "improvement", "best-improvement"] as const).pipe(
    Options.optional,
    Options.withDescription("reward signal (default neg-val)")
  ),
  tie_break: Options.choice(AgentFlags.tie_break, ["first", "random"] as const).pipe(
    Options.optional,
    Options.withDescription("ties between equal Q-values: first action (published) or random")
  ),
  mode: Options.choice(AgentFlags.mode, ["own", "scale"] as const).pipe(
    Options.optional,
    Options.withDescription("own: the agent's LR is the LR; scale: the agent scales the cosine schedule")
  ),
  state: Options.choice(AgentFlags.state, ["rounding", "bins"] as const).pipe(
    Options.optional,
    Options.withDescription("state discretisation: rounding (published: val 2 decimals, LR 5) or bins")
  ),
  factors: Options.text(AgentFlags.factors).pipe(
    Options.optional,
    Options.withDescription("comma-separated LR multipliers (default 0.9,1.0,1.1)")
  )
}

const someValues = <T extends Record<string, Option.Option<unknown>>>(options: T) =>
  Object.fromEntries(
    Object.entries(options).flatMap(([k, v]) => (Option.isSome(v) ? [[k, v.value]] : []))
  ) as { [K in keyof T]?: T[K] extends Option.Option<infer A> ? A : never }

const agentFields = (values: ReturnType<typeof someValues<{ [K in keyof typeof agentOptions]: Option.Option<any> }>>) => {
  const { state, factors, ...rest } = values
  return {
    ...rest,
    ...(state === undefined ? {} : { state: { kind: state } }),
    ...(factors === undefined ? {} : { factors: String(factors).split(",").map(Number) })
  }
}

const readConfigFile = (path: string, problem = (reason: string) => `cannot read --config ${path}: ${reason}`) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").then((text) => JSON.parse(text) as Record<string, unknown>),
    catch: (e) => new ConfigError({ message: problem(e instanceof Error ? e.message : String(e)) })
  })

/** A resumed run is the run its config.json describes: flags that would change it are refused, not ignored. */
const refuseResumeChanges = (given: ReadonlyArray<string>) =>
  given.length === 0
    ? Effect.void
    : Effect.fail(
      new ConfigError({
        message: `--resume continues a run exactly as its config.json says, so ${given.join(", ")} cannot be combined with it; ` +
          `to train with other settings, start a new run: qlr run --config DIR/config.json ${given[0]} ... --out NEW_DIR`
      })
    )

const run = Command.make(
  "run",
  {
    dataset: datasetOption,
    encoding: encodingOption,
    // Checked by resolveConfig, whose messages name the flag and the choices.
    preset: described(Options.text("preset").pipe(Options.withDefault("cpu")), `model and training preset: ${PresetNames.join(" | ")} (default cpu)`),
    policy: described(Options.text("policy").pipe(Options.withDefault("qlearning")), `LR controller: ${PolicyNames.join(" | ")} (default qlearning)`),
    variant: described(
      Options.text("variant").pipe(Options.optional),
      `a named experiment variant (wins over --policy): ${VariantNames.join(" | ")}`
    ),
    config: described(Options.file("config").pipe(Options.optional), "rerun a run's config.json (flags given too override it)"),
    out: described(Options.text("out").pipe(Options.optional), "run directory to create (must not exist or be empty)"),
    resume: described(Options.directory("resume").pipe(Options.optional), "continue the run in DIR from its last checkpoint"),
    onDivergence: described(
      Options.choice("on-divergence", ["stop", "rollback"] as const).pipe(Options.optional),
      "on a NaN/infinite loss: stop (default), or reload the last checkpoint and scale the LR down"
    ),
    maxRollbacks: described(Options.integer("max-rollbacks").pipe(Options.optional), "rollbacks before the run stops as diverged (default 3)"),
    checkpointEvery: described(
      Options.integer("checkpoint-every").pipe(Options.withDefault(1)),
      "write a checkpoint every N evaluations; 0: never (no resume, no rollback)"
    ),
    evalSplit: described(Options.choice("eval-split", ["val", "test"] as const).pipe(Options.optional), "split the evaluations report as val_loss (test only on explicit request)"),
    backend: backendOption,
    requireGpu: described(Options.boolean("require-gpu"), "fail unless a GPU device is really in use"),
    dataDir: dataDirOption,
    cacheDir: cacheDirOption,
    qTableIn: described(Options.file("q-table-in").pipe(Options.optional), "start the agent from a saved table"),
    qTableOut: described(Options.text("q-table-out").pipe(Options.optional), "save the agent's table at the end"),
    sampleCount: described(Options.integer("sample-count").pipe(Options.withDefault(inferenceDefaults.count)), "samples for the inference speed measurement"),
    sampleTokens: described(Options.integer("sample-tokens").pipe(Options.withDefault(inferenceDefaults.tokens)), "new tokens per sample"),
    quiet: described(Options.boolean("quiet"), "no progress output"),
    ...overrideOptions,
    ...agentOptions
  },
  (o) =>
    Effect.gen(function*() {
      const overrides = someValues(Object.fromEntries((Object.keys(OverrideFlags) as Array<OverridableField>).map((k) => [k, o[k]])))
      const agent = agentFields(someValues(Object.fromEntries(Object.keys(agentOptions).map((k) => [k, (o as any)[k]]))))
      const divergence = someValues({ on_divergence: o.onDivergence, max_rollbacks: o.maxRollbacks })
      const fromFile = (path: string) =>
        Effect.flatMap(readConfigFile(path), (file) =>
          decodeTrainConfig({ ...file, ...overrides, ...divergence, policy: { ...(file["policy"] as object), ...agent } }))
      const resumeDir = Option.getOrUndefined(o.resume)
      if (resumeDir !== undefined) {
        const flagOf = (field: string) => `--${(OverrideFlags as Record<string, string>)[field] ?? field.replace(/_/g, "-")}`
        yield* refuseResumeChanges([
          ...Object.keys({ ...overrides, ...divergence }).map((field) => flagOf(field)),
          ...(Object.keys(agent).length > 0 ? ["agent settings (--alpha, --epsilon, ...)"] : []),
          ...(Option.isSome(o.config) ? ["--config"] : []),
          ...(Option.isSome(o.out) ? ["--out"] : []),
          ...(Option.isSome(o.variant) ? ["--variant"] : []),
          ...(Option.isSome(o.evalSplit) ? ["--eval-split"] : []),
          ...(Option.isSome(o.qTableIn) ? ["--q-table-in"] : [])
        ])
      }
      const config: TrainConfig = yield* resumeDir !== undefined
        ? decodeTrainConfig(
          yield* readConfigFile(
            join(resumeDir, "config.json"),
            (reason) => `--resume ${resumeDir}: not a run directory written by qlr run (its config.json: ${reason})`
          )
        )
        : Option.match(o.config, {
          onNone: () =>
            resolveConfig({
              preset: o.preset,
              dataset: o.dataset,
              encoding: Option.getOrUndefined(o.encoding),
              policy: o.policy,
              variant: Option.getOrUndefined(o.variant),
              eval_split: Option.getOrUndefined(o.evalSplit),
              overrides: { ...overrides, ...divergence },
              ...(Object.keys(agent).length > 0 ? { agent } : {})
            }),
          onSome: fromFile
        })
      if (Object.keys(agent).length > 0 && config.policy.kind !== "qlearning")
        return yield* new ConfigError({
          message: `agent settings (${Object.keys(agent).map((k) => `--${AgentFlags[k as keyof typeof AgentFlags]}`).join(", ")}) ` +
            `apply to the Q-learning agent only, but this run's policy is ${config.policy.kind}: drop them or use --policy qlearning`
        })
      if (o.checkpointEvery < 0)
        return yield* new ConfigError({ message: `--checkpoint-every must be 0 (never) or a positive number of evaluations (got ${o.checkpointEvery})` })
      const outDir = resumeDir ?? Option.getOrUndefined(o.out)
      if (outDir === undefined)
        return yield* new ConfigError({ message: "missing --out DIR: name the run directory to create (or --resume DIR)" })
      yield* runTraining({
        config,
        outDir,
        resume: resumeDir !== undefined,
        checkpointEvery: o.checkpointEvery,
        handleSigint: true,
        agentIn: Option.getOrUndefined(o.qTableIn),
        agentOut: Option.getOrUndefined(o.qTableOut),
        sampling: { ...inferenceDefaults, count: o.sampleCount, tokens: o.sampleTokens, seed: config.seed },
        requireGpu: o.requireGpu,
        verbose: !o.quiet,
        variant: Option.getOrUndefined(o.variant)
      }).pipe(
        Effect.provide(
          Layer.mergeAll(modelLayer(o.backend), readerLayer(o.dataDir, o.cacheDir), JsonlMetricsSink.layer(join(outDir, "events.jsonl")))
        )
      )
    })
).pipe(Command.withDescription("train a GPT under one LR controller and write a run directory"))

const prepareCommand = Command.make(
  "prepare",
  { dataset: datasetOption, encoding: encodingOption, dataDir: dataDirOption, cacheDir: cacheDirOption },
  (o) =>
    Effect.gen(function*() {
      const summary = yield* prepare(o.dataset, Option.getOrElse(o.encoding, () => (o.dataset === "enwik8" ? "bytes" as const : "chars" as const)))
      yield* Console.log(JSON.stringify(summary, null, 2))
    }).pipe(Effect.provide(readerLayer(o.dataDir, o.cacheDir)))
).pipe(Command.withDescription("download, verify and prepare a dataset ahead of time"))

const inspectAgent = Command.make("inspect-agent", { file: Args.file({ name: "FILE" }) }, ({ file }) =>
  Effect.gen(function*() {
    const text = yield* Effect.tryPromise({
      try: () => readFile(file, "utf8"),
      catch: (e) => new StateFileError({ message: `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}` })
    })
    const state = yield* decodeAgentFile(text, file)
    yield* Console.log(renderAgentReport(state))
  })).pipe(Command.withDescription("print what a saved agent learned: state -> best action and Q-values"))

const sample = Command.make(
  "sample",
  {
    run: described(Options.directory("run"), "a run directory written by qlr run"),
    count: described(Options.integer("count").pipe(Options.withDefault(1)), "number of samples"),
    tokens: described(Options.integer("tokens").pipe(Options.withDefault(500)), "new tokens per sample"),
    temperature: described(Options.float("temperature").pipe(Options.withDefault(0.8)), "sampling temperature"),
    topK: described(Options.integer("top-k").pipe(Options.withDefault(200)), "sample among the k most likely tokens"),
    prompt: described(Options.text("prompt").pipe(Options.withDefault("\n")), "text to continue"),
    seed: described(Options.integer("seed").pipe(Options.withDefault(1337)), "sampling seed"),
    backend: backendOption
  },
  (o) =>
    Effect.gen(function*() {
      if (o.count < 1 || o.tokens < 1)
        return yield* new ConfigError({ message: `--count and --tokens must be at least 1 (got ${o.count} and ${o.tokens})` })
      const result = yield* sampleFromRun(o.run, {
        count: o.count,
        tokens: o.tokens,
        temperature: o.temperature,
        topK: o.topK,
        seed: o.seed
      }, o.prompt)
      for (const text of result.texts) yield* Console.log(text + "\n---")
      yield* Console.error(`qlr: ${result.tokensPerSecond === null ? "n/a" : result.tokensPerSecond.toFixed(1)} tokens/s`)
    }).pipe(Effect.provide(modelLayer(o.backend)))
).pipe(Command.withDescription("generate text from a run's trained weights and measure tokens/s"))

export const qlr = Command.make("qlr").pipe(
  Command.withDescription("character-level GPT training with Q-learning and scheduled learning rates"),
  Command.withSubcommands([run, prepareCommand, inspectAgent, sample, sweepCommand, reportCommand])
)

/** Run the CLI on `argv`. */
export const cli = (version: string) => Command.run(qlr, { name: "qlr", version })
