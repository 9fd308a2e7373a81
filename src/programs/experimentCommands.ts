/**
 * The experiment commands of the CLI: `qlr sweep` runs a sweep file's runs
 * and aggregates them; `qlr report` writes the report of a sweep directory.
 * @since 0.1.0
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { writeReport } from "./report.js"
import { runSweep, SweepBackends } from "./sweep.js"

export const sweepCommand = Command.make(
  "sweep",
  {
    sweepFile: Args.file({ name: "SWEEP.json", exists: "yes" }).pipe(
      Args.withDescription("sweep file: datasets, variants, seeds, preset and overrides (see sweeps/)")
    ),
    out: Options.text("out").pipe(Options.withDescription("sweep directory; rerunning into it skips the runs already done")),
    jobs: Options.integer("jobs").pipe(
      Options.withDefault(1),
      Options.withDescription("runs at a time; above 1 the report marks their timings as sharing the machine")
    ),
    backend: Options.choice("backend", SweepBackends).pipe(
      Options.optional,
      Options.withDescription("training backend of every run (default: the sweep file's, else auto)")
    ),
    dataDir: Options.directory("data-dir").pipe(
      Options.optional,
      Options.withDescription("local dataset copies for every run (default: the sweep file's data_dir, else $QLR_DATA_DIR)")
    ),
    cacheDir: Options.text("cache-dir").pipe(Options.optional, Options.withDescription("where prepared datasets are kept"))
  },
  (o) =>
    runSweep({
      sweepFile: o.sweepFile,
      outDir: o.out,
      jobs: o.jobs,
      backend: Option.getOrUndefined(o.backend),
      dataDir: Option.getOrUndefined(o.dataDir),
      cacheDir: Option.getOrUndefined(o.cacheDir)
    })
).pipe(Command.withDescription("run every dataset x variant x seed of a sweep file as `qlr run` child processes, then aggregate"))

export const reportCommand = Command.make(
  "report",
  { dir: Args.directory({ name: "DIR", exists: "yes" }).pipe(Args.withDescription("a sweep directory written by qlr sweep")) },
  ({ dir }) =>
    Effect.flatMap(writeReport(dir), (written) =>
      Console.log(`wrote ${written.markdown}, ${written.html} and ${written.figures.length} figures in ${dir}/figures`))
).pipe(Command.withDescription("write report.md, a self-contained report.html and figures/*.svg for a sweep directory"))
