/**
 * The report's figures (SPEC §4) as Vega-Lite specs rendered to SVG in Node:
 * Vega's headless view draws SVG without a canvas or a browser.
 * @since 0.1.0
 */
import { Data, Effect } from "effect"
import * as vega from "vega"
import { compile, type TopLevelSpec } from "vega-lite"
import type { LossPoint, LrPoint } from "../domain/Aggregate.js"
import { messageOf } from "../layers/backendChoices.js"

/** The report could not be rendered or written. */
export class ReportError extends Data.TaggedError("ReportError")<{ readonly message: string }> {}

const size = { width: 560, height: 300 }

/** One colour per variant, the same in every figure: the domain fixes the order. */
const variantColour = (variants: ReadonlyArray<string>) => ({
  field: "variant",
  type: "nominal" as const,
  title: "variant",
  scale: { domain: [...variants], scheme: "tableau10" }
})

/** Train or val loss against iteration: the mean over seeds, with a mean ± stderr band where there are 2+ seeds. */
export const lossChart = (
  title: string,
  split: "train" | "val",
  points: ReadonlyArray<LossPoint>,
  variants: ReadonlyArray<string>
): TopLevelSpec => {
  const yTitle = `${split} loss (mean ± stderr over seeds)`
  return {
    ...size,
    title,
    data: {
      values: points.map((p) => ({
        variant: p.variant,
        iter: p.iter,
        mean: p.mean,
        lo: p.stderr === null ? null : p.mean - p.stderr,
        hi: p.stderr === null ? null : p.mean + p.stderr
      }))
    },
    encoding: { x: { field: "iter", type: "quantitative", title: "iteration" } },
    layer: [
      {
        transform: [{ filter: "isValid(datum.lo)" }],
        mark: { type: "area", opacity: 0.18 },
        encoding: {
          y: { field: "lo", type: "quantitative", title: yTitle, scale: { zero: false } },
          y2: { field: "hi" },
          // The lines' legend names the variants; the faint bands would make faint symbols.
          color: { ...variantColour(variants), legend: null }
        }
      },
      {
        mark: { type: "line", strokeWidth: 1.6 },
        encoding: {
          y: { field: "mean", type: "quantitative", title: yTitle, scale: { zero: false } },
          color: variantColour(variants)
        }
      }
    ]
  }
}

/** The LR in force against iteration, one line per run (seed), coloured by variant; log scale. */
export const lrChart = (title: string, points: ReadonlyArray<LrPoint>, variants: ReadonlyArray<string>): TopLevelSpec => ({
  ...size,
  title,
  data: {
    values: points.map((p) => ({ variant: p.variant, run: `${p.variant} seed ${p.seed}`, order: p.order, iter: p.iter, lr: p.lr }))
  },
  mark: { type: "line", strokeWidth: 1.2, opacity: 0.85 },
  encoding: {
    x: { field: "iter", type: "quantitative", title: "iteration" },
    y: { field: "lr", type: "quantitative", title: "learning rate (each seed)", scale: { type: "log" } },
    color: variantColour(variants),
    detail: { field: "run", type: "nominal" },
    order: { field: "order", type: "quantitative" }
  }
})

/** Render a Vega-Lite spec to a standalone SVG document. */
export const renderSvg = (spec: TopLevelSpec): Effect.Effect<string, ReportError> =>
  Effect.tryPromise({
    try: async () => {
      const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" })
      try {
        return await view.toSVG()
      } finally {
        view.finalize()
      }
    },
    catch: (e) => new ReportError({ message: `cannot render a figure: ${messageOf(e)}` })
  })
