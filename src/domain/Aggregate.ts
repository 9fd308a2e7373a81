/**
 * From the runs of a sweep to what the report shows: per variant and dataset
 * the mean and standard error over seeds in the published `final_info.json`
 * layout, each variant's paired comparison with the baseline, and the loss
 * and LR curves of the figures. Diverged runs are counted and shown but left
 * out of every mean.
 * @since 0.1.0
 */
import { Schema } from "effect"
import { LITTLE_POWER_BELOW, mean, pairedTTest, standardError, type PairedComparison } from "./Stats.js"

/** The per-run figures that are averaged over seeds (SPEC §4). */
export const MetricKeys = ["final_train_loss", "best_val_loss", "total_train_time", "avg_inference_tokens_per_second"] as const
/** One of {@link MetricKeys}. */
export type MetricKey = (typeof MetricKeys)[number]

const NullableNumber = Schema.NullOr(Schema.Number)

/** A run's final_info.json as read back: JSON turns a NaN loss of a diverged run into null. */
export const RecordedFinalInfo = Schema.Struct({
  final_train_loss: NullableNumber,
  best_val_loss: NullableNumber,
  total_train_time: NullableNumber,
  avg_inference_tokens_per_second: NullableNumber,
  test_loss: Schema.optional(NullableNumber),
  diverged: Schema.optional(Schema.Boolean),
  diverged_iter: Schema.optional(Schema.Number)
})
export type RecordedFinalInfo = typeof RecordedFinalInfo.Type

/** The fields of an events.jsonl line the figures need; losses are null once they are NaN. */
export const CurveEvent = Schema.Struct({
  iter: Schema.Number,
  train_loss: NullableNumber,
  val_loss: NullableNumber,
  lr: Schema.Number,
  next_lr: Schema.Number
})
export type CurveEvent = typeof CurveEvent.Type

/** finished and diverged runs are results; failed ones ran and broke; missing ones have not run. */
export type RunStatus = "finished" | "diverged" | "failed" | "missing"

/** One run of a sweep as the aggregation sees it: where it belongs, how it ended, what it recorded. */
export interface RunResult {
  readonly dataset: string
  readonly variant: string
  readonly seed: number
  readonly status: RunStatus
  /** Present for finished and diverged runs. */
  readonly final: RecordedFinalInfo | null
  readonly events: ReadonlyArray<CurveEvent>
}

type Means = { readonly [K in MetricKey as `${K}_mean`]: number | null }
type Stderrs = { readonly [K in MetricKey as `${K}_stderr`]: number | null }
/** Per-seed values, one list per key, in seed order; diverged runs included (and flagged). */
type PerSeed = { readonly [K in MetricKey]: ReadonlyArray<number | null> } & {
  readonly seed: ReadonlyArray<number>
  readonly diverged: ReadonlyArray<boolean>
}

/** One dataset of a variant's aggregate `final_info.json`. */
export interface DatasetAggregate {
  readonly means: Means
  readonly stderrs: Stderrs
  readonly final_info_dict: PerSeed
  /** Runs in the means: finished, not diverged. */
  readonly n: number
  readonly diverged_seeds: ReadonlyArray<number>
  readonly failed_seeds: ReadonlyArray<number>
  readonly missing_seeds: ReadonlyArray<number>
}

const finite = (x: number | null | undefined): x is number => typeof x === "number" && Number.isFinite(x)
const finiteValues = (xs: ReadonlyArray<number | null | undefined>): ReadonlyArray<number> => xs.filter(finite)

/** Distinct values in first-seen order. */
export const distinctInOrder = <A>(xs: ReadonlyArray<A>): ReadonlyArray<A> => [...new Set(xs)]

const perMetric = <A>(f: (key: MetricKey) => A): { readonly [K in MetricKey]: A } => ({
  final_train_loss: f("final_train_loss"),
  best_val_loss: f("best_val_loss"),
  total_train_time: f("total_train_time"),
  avg_inference_tokens_per_second: f("avg_inference_tokens_per_second")
})

const seedsWith = (runs: ReadonlyArray<RunResult>, status: RunStatus) => runs.filter((r) => r.status === status).map((r) => r.seed)

/** Aggregate one variant's runs on one dataset. */
export const aggregateRuns = (runs: ReadonlyArray<RunResult>): DatasetAggregate => {
  const recorded = runs.filter((r) => r.final !== null)
  const used = runs.filter((r) => r.status === "finished")
  const valuesOf = (key: MetricKey) => finiteValues(used.map((r) => r.final?.[key]))
  return {
    means: Object.fromEntries(MetricKeys.map((k) => [`${k}_mean`, mean(valuesOf(k))])) as Means,
    stderrs: Object.fromEntries(MetricKeys.map((k) => [`${k}_stderr`, standardError(valuesOf(k))])) as Stderrs,
    final_info_dict: {
      ...perMetric((k) => recorded.map((r) => (finite(r.final?.[k]) ? r.final[k] : null))),
      seed: recorded.map((r) => r.seed),
      diverged: recorded.map((r) => r.status === "diverged")
    },
    n: used.length,
    diverged_seeds: seedsWith(runs, "diverged"),
    failed_seeds: seedsWith(runs, "failed"),
    missing_seeds: seedsWith(runs, "missing")
  }
}

/** Every variant's aggregate keyed by dataset, in the order the runs come: variant -> dataset -> aggregate. */
export const aggregateSweep = (
  runs: ReadonlyArray<RunResult>
): Readonly<Record<string, Readonly<Record<string, DatasetAggregate>>>> =>
  Object.fromEntries(
    distinctInOrder(runs.map((r) => r.variant)).map((variant) => {
      const ofVariant = runs.filter((r) => r.variant === variant)
      return [
        variant,
        Object.fromEntries(
          distinctInOrder(ofVariant.map((r) => r.dataset)).map((dataset) => [
            dataset,
            aggregateRuns(ofVariant.filter((r) => r.dataset === dataset))
          ])
        )
      ]
    })
  )

/** A variant against the baseline on the seeds both have a (non-diverged) best val loss for. */
export interface BaselineComparison {
  readonly dataset: string
  readonly variant: string
  readonly seeds: ReadonlyArray<number>
  /** Differences are variant - baseline: negative means the variant reached a lower val loss. */
  readonly best_val_loss: PairedComparison
  /** The 95% interval includes 0; null without an interval. */
  readonly within_noise: boolean | null
  readonly little_power: boolean
}

/** The variant every other variant is compared with: the warmup-cosine schedule at the preset's peak LR. */
export const BASELINE = "baseline"

/** Compare `variant` with the {@link BASELINE} on `dataset`: a paired t-test of best val loss over the seeds both finished. */
export const compareWithBaseline = (runs: ReadonlyArray<RunResult>, dataset: string, variant: string): BaselineComparison => {
  const bestVal = (v: string) =>
    new Map(
      runs
        .filter((r) => r.dataset === dataset && r.variant === v && r.status === "finished" && finite(r.final?.best_val_loss))
        .map((r) => [r.seed, r.final!.best_val_loss as number])
    )
  const ofVariant = bestVal(variant)
  const ofBaseline = bestVal(BASELINE)
  const seeds = [...ofVariant.keys()].filter((s) => ofBaseline.has(s))
  const comparison = pairedTTest(seeds.map((s) => ofVariant.get(s)!), seeds.map((s) => ofBaseline.get(s)!))
  return {
    dataset,
    variant,
    seeds,
    best_val_loss: comparison,
    within_noise: comparison.ci95_low === null || comparison.ci95_high === null
      ? null
      : comparison.ci95_low <= 0 && comparison.ci95_high >= 0,
    little_power: seeds.length < LITTLE_POWER_BELOW
  }
}

/** Mean over seeds of a loss at one evaluation; `stderr` is null below 2 seeds. */
export interface LossPoint {
  readonly dataset: string
  readonly variant: string
  readonly split: "train" | "val"
  readonly iter: number
  readonly mean: number
  readonly stderr: number | null
  readonly n: number
}

/** The loss curves of the figures, from finished (non-diverged) runs only, like the means. */
export const lossCurves = (runs: ReadonlyArray<RunResult>): ReadonlyArray<LossPoint> => {
  const groups = new Map<string, { dataset: string; variant: string; split: "train" | "val"; iter: number; values: Array<number> }>()
  for (const run of runs.filter((r) => r.status === "finished")) {
    for (const e of run.events) {
      for (const split of ["train", "val"] as const) {
        const value = split === "train" ? e.train_loss : e.val_loss
        if (!finite(value)) continue
        const key = JSON.stringify([run.dataset, run.variant, split, e.iter])
        const group = groups.get(key) ?? { dataset: run.dataset, variant: run.variant, split, iter: e.iter, values: [] }
        group.values.push(value)
        groups.set(key, group)
      }
    }
  }
  return [...groups.values()].map(({ values, ...where }) => ({
    ...where,
    mean: mean(values)!,
    stderr: standardError(values),
    n: values.length
  }))
}

/** One vertex of a run's LR trace; `order` sorts the vertices along the line. */
export interface LrPoint {
  readonly dataset: string
  readonly variant: string
  readonly seed: number
  readonly order: number
  readonly iter: number
  readonly lr: number
}

/**
 * Each run's LR at its evaluations, diverged runs included: the LR in force
 * before an evaluation, then the one chosen after it at the same iteration,
 * so an agent's decisions show as steps and a schedule as a smooth line.
 */
export const lrTraces = (runs: ReadonlyArray<RunResult>): ReadonlyArray<LrPoint> =>
  runs.flatMap((run) =>
    run.events.flatMap((e, i) =>
      [e.lr, e.next_lr].map((lr, j) => ({ dataset: run.dataset, variant: run.variant, seed: run.seed, order: 2 * i + j, iter: e.iter, lr }))
    )
  )
