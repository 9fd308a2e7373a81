/**
 * A sweep file names datasets, variants, seeds and the preset with its
 * overrides; it expands into one fully resolved run per (dataset, variant,
 * seed), each identified by a hash of its TrainConfig so that a rerun of the
 * sweep finds the runs it already has.
 * @since 0.1.0
 */
import { Either, Schema } from "effect"
import { createHash } from "node:crypto"
import { TrainConfig } from "./Config.js"
import { ConfigError } from "./Errors.js"
import { PresetNames } from "./Presets.js"
import { formatParseError, OverrideFlags, resolveConfig, type OverridableField } from "./ResolveConfig.js"
import { VariantNames, type VariantName } from "./Variants.js"

/** Seeds come from the sweep's seed lists, so every other override field may be set. */
type SweepOverrideField = Exclude<OverridableField, "seed">
const sweepOverrideFields = (Object.keys(OverrideFlags) as Array<OverridableField>).filter(
  (field): field is SweepOverrideField => field !== "seed"
)

/** Preset overrides by TrainConfig field name (e.g. `max_iters`); their values are checked on resolution. */
const Overrides = Schema.Struct(
  Object.fromEntries(sweepOverrideFields.map((field) => [field, Schema.optionalWith(Schema.Number, { exact: true })])) as {
    readonly [K in SweepOverrideField]: Schema.optionalWith<typeof Schema.Number, { exact: true }>
  }
)

/** One of `names`, with one message naming them all instead of one per name. */
const oneOf = <const Names extends ReadonlyArray<string>>(what: string, names: Names) =>
  Schema.Literal(...names).annotations({
    message: (issue) => ({ message: `unknown ${what} ${JSON.stringify(issue.actual)}: use one of ${names.join(", ")}`, override: true })
  })

const distinct = <A>(what: string) => (xs: ReadonlyArray<A>) =>
  new Set(xs).size === xs.length || `${what} must not repeat (got ${xs.join(", ")})`

const Seeds = Schema.NonEmptyArray(Schema.Number.pipe(Schema.int())).pipe(Schema.filter(distinct("seeds")))

/** One dataset of a sweep; a bare string is the name alone. */
const DatasetEntry = Schema.Union(
  Schema.NonEmptyString,
  Schema.Struct({
    /** shakespeare_char, enwik8, text8 or file:PATH (relative to where `qlr sweep` runs). */
    name: Schema.NonEmptyString,
    encoding: Schema.optionalWith(oneOf("encoding", ["chars", "bytes"]), { exact: true }),
    /** This dataset's seeds, instead of the sweep's. */
    seeds: Schema.optionalWith(Seeds, { exact: true }),
    /** Laid over the sweep's overrides for this dataset only. */
    overrides: Schema.optionalWith(Overrides, { exact: true })
  })
)

/** The sweep file. */
export const SweepSpec = Schema.Struct({
  description: Schema.optionalWith(Schema.String, { exact: true }),
  preset: oneOf("preset", PresetNames),
  datasets: Schema.NonEmptyArray(DatasetEntry),
  variants: Schema.NonEmptyArray(oneOf("variant", VariantNames)).pipe(Schema.filter(distinct("variants"))),
  seeds: Seeds,
  overrides: Schema.optionalWith(Overrides, { exact: true }),
  /** Agent settings laid over every agent variant's (e.g. `{"tie_break": "random"}`). */
  agent: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { exact: true }),
  /** Training backend for every run (`qlr run --backend`); `qlr sweep --backend` wins. */
  backend: Schema.optionalWith(Schema.NonEmptyString, { exact: true }),
  /** Local dataset copies (`qlr run --data-dir`); `qlr sweep --data-dir` wins. */
  data_dir: Schema.optionalWith(Schema.NonEmptyString, { exact: true }),
  /** The inference-speed measurement; SPEC §4's 10 samples x 500 tokens by default. */
  sampling: Schema.optionalWith(
    Schema.Struct({
      count: Schema.Number.pipe(Schema.int(), Schema.positive()),
      tokens: Schema.Number.pipe(Schema.int(), Schema.positive())
    }),
    { exact: true }
  )
}).pipe(
  Schema.filter((spec) => {
    const names = spec.datasets.map((d) => (typeof d === "string" ? d : d.name))
    return distinct("datasets")(names)
  })
)
export type SweepSpec = typeof SweepSpec.Type

/** Decode a sweep file's JSON; unknown fields are errors, so a typo cannot silently drop a setting. */
export const decodeSweepSpec = (json: unknown, source: string): Either.Either<SweepSpec, ConfigError> =>
  Schema.decodeUnknownEither(SweepSpec)(json, { onExcessProperty: "error", errors: "all" }).pipe(
    Either.mapLeft((e) => new ConfigError({ message: `invalid sweep file ${source}:\n${formatParseError(e)}` }))
  )

/** One run of a sweep. */
export interface PlannedRun {
  readonly dataset: string
  readonly variant: VariantName
  readonly seed: number
  readonly config: TrainConfig
  /** {@link configHash} of `config`: the run's directory name. */
  readonly hash: string
}

/** JSON with object keys sorted at every level, so equal values give equal text. */
export const stableJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

/** sha256 prefix of the encoded config's stable JSON: covers every setting, not the code version (SPEC §6). */
export const configHash = (config: TrainConfig): string =>
  createHash("sha256").update(stableJson(Schema.encodeSync(TrainConfig)(config))).digest("hex").slice(0, 16)

/** Every (dataset, variant, seed) run of a sweep, datasets outermost; the first config error stops it. */
export const expandSweep = (spec: SweepSpec): Either.Either<ReadonlyArray<PlannedRun>, ConfigError> =>
  Either.all(
    spec.datasets.flatMap((entry) => {
      const dataset = typeof entry === "string" ? { name: entry } : entry
      return spec.variants.flatMap((variant) =>
        (dataset.seeds ?? spec.seeds).map((seed) =>
          resolveConfig({
            preset: spec.preset,
            dataset: dataset.name,
            encoding: dataset.encoding,
            variant,
            overrides: { ...spec.overrides, ...dataset.overrides, seed },
            ...(spec.agent === undefined ? {} : { agent: spec.agent })
          }).pipe(
            Either.map((config): PlannedRun => ({ dataset: dataset.name, variant, seed, config, hash: configHash(config) })),
            Either.mapLeft((e) => new ConfigError({ message: `sweep run ${dataset.name} / ${variant} / seed ${seed}: ${e.message}` }))
          )
        )
      )
    })
  )
