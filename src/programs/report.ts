/**
 * `qlr report DIR`: the sweep's results as `report.md` and a self-contained
 * `report.html` (figures inline, no external URL), with the figures also
 * written as `figures/*.svg`. It states the setup (and how it differs from
 * the paper's), the code versions and the machine sharing behind the
 * timings, and reads each comparison with the baseline honestly.
 * @since 0.1.0
 */
import { Effect } from "effect"
import { join } from "node:path"
import {
  aggregateRuns,
  BASELINE,
  compareWithBaseline,
  distinctInOrder,
  lossCurves,
  lrTraces,
  type BaselineComparison
} from "../domain/Aggregate.js"
import type { TrainConfig } from "../domain/Config.js"
import { presetFields } from "../domain/Presets.js"
import { LITTLE_POWER_BELOW } from "../domain/Stats.js"
import { jsonText, writeFileAtomic } from "../layers/files.js"
import { lossChart, lrChart, renderSvg, ReportError } from "./charts.js"
import { loadSweep, writeAggregates, type LoadedRun, type SweepManifest } from "./sweep.js"

/** The report as a list of blocks, rendered once as Markdown and once as HTML. */
type Block =
  | { readonly kind: "heading"; readonly level: 1 | 2 | 3; readonly text: string }
  | { readonly kind: "paragraph"; readonly text: string }
  | { readonly kind: "warning"; readonly text: string }
  | { readonly kind: "list"; readonly items: ReadonlyArray<string> }
  | {
    readonly kind: "table"
    readonly id: string
    readonly caption: string
    readonly header: ReadonlyArray<string>
    readonly rows: ReadonlyArray<ReadonlyArray<string>>
  }
  | { readonly kind: "figure"; readonly id: string; readonly file: string; readonly caption: string; readonly svg: string }

const NA = "n/a"
const num = (x: number | null | undefined, digits = 4): string =>
  x === null || x === undefined || !Number.isFinite(x) ? NA : x.toFixed(digits)
const signed = (x: number | null, digits = 4): string => (x === null ? NA : `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(digits)}`)
const pValue = (p: number | null): string => (p === null ? `p ${NA}` : p < 0.001 ? "p < 0.001" : `p = ${p.toFixed(3)}`)
const meanStderr = (mean: number | null, stderr: number | null, digits = 4) =>
  mean === null ? NA : `${num(mean, digits)} ± ${num(stderr, digits)}`
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

const SHARED_MARK = "†"
const UNKNOWN_MARK = "?"

/** The mark a timing figure carries: shared with other runs, or sharing unknown (no sweep record). */
const timingMark = (runs: ReadonlyArray<LoadedRun>): string => {
  const timed = runs.filter((r) => r.status === "finished")
  if (timed.some((r) => r.record?.shared_machine === true)) return ` ${SHARED_MARK}`
  if (timed.some((r) => r.record === null)) return ` ${UNKNOWN_MARK}`
  return ""
}

const runCounts = (runs: ReadonlyArray<LoadedRun>): string => {
  const a = aggregateRuns(runs)
  const extras = [
    a.diverged_seeds.length > 0 ? `${a.diverged_seeds.length} diverged` : "",
    a.failed_seeds.length > 0 ? `${a.failed_seeds.length} failed` : "",
    a.missing_seeds.length > 0 ? `${a.missing_seeds.length} not run` : ""
  ].filter((s) => s !== "")
  return `${a.n} of ${runs.length}${extras.length > 0 ? ` (${extras.join(", ")})` : ""}`
}

/** How to read a comparison, in words. */
const reading = (c: BaselineComparison): string => {
  const power = c.little_power ? `; n = ${c.seeds.length} < ${LITTLE_POWER_BELOW}: the test has little power` : ""
  if (c.seeds.length === 0) return "no seed finished for both"
  if (c.within_noise === null) return `not testable: ${plural(c.seeds.length, "paired seed")}, needs 2`
  if (c.within_noise) return `within noise (95% CI includes 0)${power}`
  const direction = (c.best_val_loss.mean_difference ?? 0) < 0 ? "lower" : "higher"
  return `${direction} val loss than baseline (95% CI excludes 0)${power}`
}

const resultHeader = [
  "Dataset",
  "Variant",
  "Runs in means",
  "Best val loss",
  "Final train loss",
  "Train time (s)",
  "Sampling tokens/s",
  "Δ best val vs baseline [95% CI]",
  "Paired t-test",
  "Reading"
]

const resultRow = (runs: ReadonlyArray<LoadedRun>, dataset: string, variant: string): ReadonlyArray<string> => {
  const cell = runs.filter((r) => r.dataset === dataset && r.variant === variant)
  const a = aggregateRuns(cell)
  const mark = timingMark(cell)
  const hasBaseline = runs.some((r) => r.dataset === dataset && r.variant === BASELINE)
  const comparison = variant === BASELINE
    ? ["(reference)", "", ""]
    : !hasBaseline
    ? ["no baseline in this sweep", "", ""]
    : (() => {
      const c = compareWithBaseline(runs, dataset, variant)
      const t = c.best_val_loss
      return [
        t.mean_difference === null
          ? NA
          : `${signed(t.mean_difference)} ${t.ci95_low === null ? "(no CI)" : `[${signed(t.ci95_low)}, ${signed(t.ci95_high)}]`}`,
        t.df === null ? `${NA} (${plural(t.n, "paired seed")})` : `t = ${t.t === null ? NA : t.t.toFixed(2)}, df ${t.df}, ${pValue(t.p_value)}`,
        reading(c)
      ]
    })()
  return [
    dataset,
    variant,
    runCounts(cell),
    meanStderr(a.means.best_val_loss_mean, a.stderrs.best_val_loss_stderr),
    meanStderr(a.means.final_train_loss_mean, a.stderrs.final_train_loss_stderr),
    meanStderr(a.means.total_train_time_mean, a.stderrs.total_train_time_stderr, 1) + mark,
    meanStderr(a.means.avg_inference_tokens_per_second_mean, a.stderrs.avg_inference_tokens_per_second_stderr, 1) + mark,
    ...comparison
  ]
}

/** The settings the paper fixes, and how a run's config differs from them. */
const paperDifferences = (dataset: string, config: TrainConfig): ReadonlyArray<string> => {
  const paper = presetFields("paper", dataset)
  const fields = [
    "n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout",
    "max_iters", "eval_interval", "eval_iters", "warmup_iters", "min_lr"
  ] as const
  const differences = fields.filter((f) => config[f] !== paper[f]).map((f) => `${f} ${config[f]} (paper ${paper[f]})`)
  const corpus = ["shakespeare_char", "enwik8", "text8"].includes(dataset) ? [] : ["a file, not one of the paper's corpora"]
  return [...corpus, ...differences]
}

/** The baseline's config of a dataset (its peak LR is the preset's), else any run's. */
const configOf = (runs: ReadonlyArray<LoadedRun>, dataset: string): TrainConfig | null => {
  const ofDataset = runs.filter((r) => r.dataset === dataset && r.config !== null)
  return (ofDataset.find((r) => r.variant === BASELINE) ?? ofDataset[0])?.config ?? null
}

const setupBlocks = (manifest: SweepManifest, runs: ReadonlyArray<LoadedRun>, datasets: ReadonlyArray<string>): ReadonlyArray<Block> => {
  const statusCount = (s: LoadedRun["status"]) => runs.filter((r) => r.status === s).length
  const overrides = Object.entries(manifest.spec.overrides ?? {})
  const rows = datasets.map((dataset) => {
    const c = configOf(runs, dataset)
    const seeds = distinctInOrder(runs.filter((r) => r.dataset === dataset).map((r) => r.seed))
    if (c === null) return [dataset, NA, NA, NA, NA, NA, NA, seeds.join(", "), "no run of this dataset has started"]
    const differences = paperDifferences(dataset, c)
    return [
      dataset,
      `${c.preset} (${c.encoding})`,
      `${c.n_layer} / ${c.n_head} / ${c.n_embd}, dropout ${c.dropout}`,
      `${c.block_size} × ${c.batch_size}`,
      `${c.max_iters} (warmup ${c.warmup_iters})`,
      `${c.eval_interval} / ${c.eval_iters}`,
      `${c.learning_rate} / ${c.min_lr}`,
      seeds.join(", "),
      differences.length === 0 ? "the paper's setting" : `REDUCED from the paper: ${differences.join("; ")}`
    ]
  })
  const reduced = datasets.some((d) => {
    const c = configOf(runs, d)
    return c !== null && paperDifferences(d, c).length > 0
  })
  return [
    { kind: "heading", level: 2, text: "Setup" },
    {
      kind: "paragraph",
      text: `Sweep file ${manifest.sweep_file}${manifest.spec.description === undefined ? "" : ` (${manifest.spec.description})`}: preset ${manifest.spec.preset}` +
        `${overrides.length === 0 ? "" : `, with overrides ${overrides.map(([k, v]) => `${k} = ${v}`).join(", ")}`}; ` +
        `${plural(runs.length, "planned run")}: ${statusCount("finished")} finished, ${statusCount("diverged")} diverged, ${statusCount("failed")} failed, ${statusCount("missing")} not run.`
    },
    {
      kind: "table",
      id: "setup",
      caption: "Setup per dataset (from the runs' config.json; the LR is the baseline's)",
      header: ["Dataset", "Preset (encoding)", "Layers / heads / embd", "Block × batch", "Iterations", "Eval every / batches", "Peak / min LR", "Seeds", "Compared with the paper"],
      rows
    },
    ...(reduced
      ? [{
        kind: "warning" as const,
        text: "The setup is reduced from the paper's (see the last column): these numbers are not comparable with the paper's published values (its GPU runs at the full setup); they compare the variants with each other under the reduced setup only."
      }]
      : [])
  ]
}

/** Backends and code versions: a sweep whose runs come from different commits gets a warning. */
const provenanceBlocks = (runs: ReadonlyArray<LoadedRun>): ReadonlyArray<Block> => {
  const started = runs.filter((r) => r.run !== null)
  const tally = (key: (r: LoadedRun) => string) =>
    distinctInOrder(started.map(key)).map((k) => `${k} (${plural(started.filter((r) => key(r) === k).length, "run")})`)
  const commitOf = (r: LoadedRun) => r.run?.versions.git_commit ?? "unknown commit (not a git checkout)"
  const commits = distinctInOrder(started.map(commitOf))
  const shared = runs.filter((r) => r.record?.shared_machine === true).length
  const unknown = runs.filter((r) => r.status === "finished" && r.record === null).length
  const jobs = distinctInOrder(runs.flatMap((r) => (r.record === null ? [] : [r.record.jobs])))
  return [
    { kind: "heading", level: 2, text: "Code, backend and machine" },
    {
      kind: "list",
      items: [
        `Backend: ${tally((r) => `${r.run!.backend}${r.run!.gpu ? " on a GPU" : " (no GPU)"}`).join("; ") || NA}.`,
        `Code versions: ${tally((r) => `qlr ${r.run!.versions.qlr ?? "?"} at ${commitOf(r)}`).join("; ") || NA}.`,
        shared > 0
          ? `Timings: ${plural(shared, "run")} shared the machine with other runs of the sweep (--jobs ${jobs.join("/")}); their train times and tokens/s are marked ${SHARED_MARK} and are not a dedicated machine's.`
          : "Timings: every run had the sweep's machine to itself (--jobs 1); other load on the machine is not recorded.",
        ...(unknown > 0 ? [`${plural(unknown, "finished run")} ${unknown === 1 ? "has" : "have"} no sweep record, so whether it shared the machine is unknown (marked ${UNKNOWN_MARK}).`] : [])
      ]
    },
    ...(commits.length > 1
      ? [{
        kind: "warning" as const,
        text: `The runs of this sweep come from ${commits.length} different code versions (${commits.join(", ")}): differences between variants may partly be differences between code versions. Rerun the affected runs on one commit for a clean comparison.`
      }]
      : [])
  ]
}

const methodBlock: Block = {
  kind: "paragraph",
  text: `Values are mean ± standard error over seeds (sample standard deviation with n − 1, divided by √n); with fewer than 2 seeds a statistic is ${NA}. ` +
    "Diverged runs are counted and listed but left out of every mean. Each variant is compared with the baseline on the seeds where both finished: " +
    "Δ is the mean paired difference of best val loss (variant − baseline; negative means a lower loss than the baseline), with a 95% Student t interval " +
    `and a two-sided paired t-test (df = pairs − 1). With fewer than ${LITTLE_POWER_BELOW} paired seeds the test has little power: ` +
    "a real difference can easily stay inside the noise, and one outside it rests on very few seeds."
}

const noiseSummary = (comparisons: ReadonlyArray<BaselineComparison>): Block => {
  const name = (c: BaselineComparison) => `${c.variant} on ${c.dataset}`
  const within = comparisons.filter((c) => c.within_noise === true)
  const outside = comparisons.filter((c) => c.within_noise === false)
  const untestable = comparisons.filter((c) => c.within_noise === null)
  return {
    kind: "list",
    items: [
      `Within noise (95% CI of Δ includes 0), so no difference from the baseline is shown: ${within.map(name).join("; ") || "none"}.`,
      `Outside noise (95% CI excludes 0): ${outside.map((c) => `${name(c)} (Δ ${signed(c.best_val_loss.mean_difference)}, n = ${c.seeds.length}${c.little_power ? ", little power" : ""})`).join("; ") || "none"}.`,
      ...(untestable.length > 0 ? [`Not testable (fewer than 2 paired seeds): ${untestable.map(name).join("; ")}.`] : [])
    ]
  }
}

const problemBlocks = (runs: ReadonlyArray<LoadedRun>): ReadonlyArray<Block> => {
  const diverged = runs.filter((r) => r.status === "diverged")
  const failed = runs.filter((r) => r.status === "failed")
  const missing = runs.filter((r) => r.status === "missing")
  const where = (r: LoadedRun) => `${r.dataset} / ${r.variant} / seed ${r.seed} (runs/${r.hash})`
  return [
    { kind: "heading", level: 2, text: "Diverged, failed and missing runs" },
    {
      kind: "list",
      items: [
        `Diverged (results, left out of the means): ${diverged.map((r) => `${where(r)} at iteration ${r.final?.diverged_iter ?? "?"}`).join("; ") || "none"}.`,
        `Failed: ${failed.map((r) => `${where(r)}: ${(r.record?.error ?? "").split("\n").filter((l) => l.trim() !== "").pop() ?? "no message"}`).join("; ") || "none"}.`,
        `Not run yet: ${missing.map(where).join("; ") || "none"}.`
      ]
    }
  ]
}

const perRunTable = (runs: ReadonlyArray<LoadedRun>): Block => ({
  kind: "table",
  id: "runs",
  caption: "Every run",
  header: ["Dataset", "Variant", "Seed", "Status", "Best val loss", "Final train loss", "Train time (s)", "Sampling tokens/s", "Shared machine", "Directory"],
  rows: runs.map((r) => [
    r.dataset,
    r.variant,
    String(r.seed),
    r.status,
    num(r.final?.best_val_loss),
    num(r.final?.final_train_loss),
    num(r.final?.total_train_time, 1),
    num(r.final?.avg_inference_tokens_per_second, 1),
    r.record === null ? (r.status === "missing" ? "" : "unknown") : r.record.shared_machine ? `yes ${SHARED_MARK}` : "no",
    `runs/${r.hash}`
  ])
})

/** The figures of one dataset: train loss, val loss and the LR traces. */
const datasetFigures = (runs: ReadonlyArray<LoadedRun>, dataset: string, index: number, variants: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const ofDataset = runs.filter((r) => r.dataset === dataset)
    const curves = lossCurves(ofDataset)
    const stem = `d${index + 1}`
    const specs = [
      {
        id: `${stem}-train-loss`,
        caption: `${dataset}: train loss against iteration, mean over seeds with a ± stderr band (diverged runs left out)`,
        spec: lossChart(`${dataset}: train loss`, "train", curves.filter((p) => p.split === "train"), variants)
      },
      {
        id: `${stem}-val-loss`,
        caption: `${dataset}: val loss against iteration, mean over seeds with a ± stderr band (diverged runs left out)`,
        spec: lossChart(`${dataset}: val loss`, "val", curves.filter((p) => p.split === "val"), variants)
      },
      {
        id: `${stem}-lr`,
        caption: `${dataset}: the LR in force at each evaluation and the LR chosen after it, one line per seed (log scale)`,
        spec: lrChart(`${dataset}: learning rate`, lrTraces(ofDataset), variants)
      }
    ]
    return yield* Effect.forEach(specs, ({ id, caption, spec }) =>
      Effect.map(renderSvg(spec), (svg): Block => ({ kind: "figure", id, file: `figures/${id}.svg`, caption, svg })))
  })

const resultTable = (
  id: string,
  caption: string,
  runs: ReadonlyArray<LoadedRun>,
  datasets: ReadonlyArray<string>,
  variants: ReadonlyArray<string>
): Block => ({
  kind: "table",
  id,
  caption,
  header: resultHeader,
  rows: datasets.flatMap((d) => variants.filter((v) => runs.some((r) => r.dataset === d && r.variant === v)).map((v) => resultRow(runs, d, v)))
})

const buildReport = (dir: string, manifest: SweepManifest, runs: ReadonlyArray<LoadedRun>) =>
  Effect.gen(function*() {
    const datasets = distinctInOrder(runs.map((r) => r.dataset))
    const variants = distinctInOrder(runs.map((r) => r.variant))
    const others = variants.filter((v) => v !== BASELINE && v !== "qlearning")
    const comparisons = variants.includes(BASELINE)
      ? datasets.flatMap((d) =>
        variants.filter((v) => v !== BASELINE && runs.some((r) => r.dataset === d && r.variant === v)).map((v) => compareWithBaseline(runs, d, v)))
      : []
    const figures = (yield* Effect.forEach(datasets, (d, i) => datasetFigures(runs, d, i, variants))).flat()
    const timingNote = `Timings marked ${SHARED_MARK} come from runs that shared the machine with other runs of the sweep.`
    const blocks: ReadonlyArray<Block> = [
      { kind: "heading", level: 1, text: "qlr sweep report" },
      { kind: "paragraph", text: `Sweep directory ${dir}; report written ${new Date().toISOString()}.` },
      ...setupBlocks(manifest, runs, datasets),
      ...provenanceBlocks(runs),
      { kind: "heading", level: 2, text: "Results" },
      methodBlock,
      resultTable("table-1", `Table 1: baseline (warmup-cosine) vs Q-learning, per dataset. ${timingNote}`, runs, datasets, [BASELINE, "qlearning"]),
      ...(variants.includes("qlearning") ? [] : [{ kind: "paragraph" as const, text: "This sweep has no qlearning variant." }]),
      resultTable("table-2", `Table 2: ablations and controls vs baseline, per dataset. ${timingNote}`, runs, datasets, [BASELINE, ...others]),
      ...(variants.includes(BASELINE)
        ? [{ kind: "heading" as const, level: 3 as const, text: "Which differences are within noise" }, noiseSummary(comparisons)]
        : [{ kind: "warning" as const, text: "This sweep has no baseline variant, so no variant is compared with one." }]),
      ...problemBlocks(runs),
      { kind: "heading", level: 2, text: "Figures" },
      ...figures,
      { kind: "heading", level: 2, text: "Appendix: every run" },
      perRunTable(runs)
    ]
    return { blocks, comparisons }
  })

const markdownCell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

const renderMarkdown = (blocks: ReadonlyArray<Block>): string =>
  blocks.map((b) => {
    switch (b.kind) {
      case "heading":
        return `${"#".repeat(b.level)} ${b.text}`
      case "paragraph":
        return b.text
      case "warning":
        return `> **Warning:** ${b.text}`
      case "list":
        return b.items.map((item) => `- ${item}`).join("\n")
      case "table":
        return [
          `**${b.caption}**`,
          "",
          `| ${b.header.map(markdownCell).join(" | ")} |`,
          `|${b.header.map(() => "---").join("|")}|`,
          ...b.rows.map((row) => `| ${row.map(markdownCell).join(" | ")} |`)
        ].join("\n")
      case "figure":
        return `![${b.caption}](${b.file})\n\n*${b.caption}*`
    }
  }).join("\n\n") + "\n"

const escapeHtml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const style = `
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: 600; padding: 0.4em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.warning { border-left: 4px solid #c60; background: #fff4e5; padding: 0.6em 1em; }
figure { margin: 1.5em 0; }
figcaption { font-size: 0.9em; color: #555; }
`

const renderHtml = (blocks: ReadonlyArray<Block>): string => {
  const body = blocks.map((b) => {
    switch (b.kind) {
      case "heading":
        return `<h${b.level}>${escapeHtml(b.text)}</h${b.level}>`
      case "paragraph":
        return `<p>${escapeHtml(b.text)}</p>`
      case "warning":
        return `<p class="warning"><strong>Warning:</strong> ${escapeHtml(b.text)}</p>`
      case "list":
        return `<ul>${b.items.map((item) => `<li>${escapeHtml(item)}</li>`).join("")}</ul>`
      case "table":
        return [
          `<table id="${b.id}"><caption>${escapeHtml(b.caption)}</caption>`,
          `<thead><tr>${b.header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>`,
          ...b.rows.map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`),
          "</tbody></table>"
        ].join("\n")
      case "figure":
        return `<figure id="${b.id}">\n${b.svg}\n<figcaption>${escapeHtml(b.caption)}</figcaption>\n</figure>`
    }
  })
  return `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>qlr sweep report</title>\n<style>${style}</style>\n</head>\n<body>\n${body.join("\n")}\n</body>\n</html>\n`
}

/** Write report.md, report.html, figures/*.svg, comparisons.json and the per-variant aggregates of a sweep directory. */
export const writeReport = (dir: string) =>
  Effect.gen(function*() {
    const { manifest, runs } = yield* loadSweep(dir)
    yield* writeAggregates(dir, runs)
    const { blocks, comparisons } = yield* buildReport(dir, manifest, runs)
    const writeError = (message: string) => new ReportError({ message })
    const figures = blocks.flatMap((b) => (b.kind === "figure" ? [b] : []))
    yield* Effect.forEach(figures, (f) => writeFileAtomic(join(dir, f.file), f.svg, writeError), { discard: true })
    const paths = { markdown: join(dir, "report.md"), html: join(dir, "report.html"), comparisons: join(dir, "comparisons.json") }
    yield* writeFileAtomic(paths.comparisons, jsonText(comparisons), writeError)
    yield* writeFileAtomic(paths.markdown, renderMarkdown(blocks), writeError)
    yield* writeFileAtomic(paths.html, renderHtml(blocks), writeError)
    return { ...paths, figures: figures.map((f) => join(dir, f.file)) }
  })
