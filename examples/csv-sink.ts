/**
 * A custom MetricsSink: every evaluation of a run goes to a CSV file instead
 * of events.jsonl.
 *
 * `runTraining` (what `qlr run` does: config.json, checkpoints,
 * final_info.json, model.bin) writes its evaluation events to whatever
 * MetricsSink is in context. Swapping the layer swaps the format; nothing
 * else changes. The run uses the deterministic fake model and a dataset held
 * in memory, provided by the InMemoryDatasetReader layer.
 *
 * Run: npm run build && npx tsx examples/csv-sink.ts
 */
import { Effect, Layer } from "effect"
import { appendFile, mkdtemp, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type EvalEvent,
  FakeModel,
  InMemoryDatasetReader,
  MetricsSink,
  resolveConfig,
  runTraining,
  SinkError
} from "qlr"

// ---------------------------------------------------------------------------
// The sink

const columns = ["iter", "train_loss", "val_loss", "lr", "next_lr", "elapsed"] as const satisfies ReadonlyArray<keyof EvalEvent>

/** A MetricsSink writing one CSV row per evaluation; building the layer writes the header. */
const CsvMetricsSink = {
  layer: (path: string): Layer.Layer<MetricsSink, SinkError> => {
    const append = (text: string, write = appendFile) =>
      Effect.tryPromise({
        try: () => write(path, text),
        catch: (e) => new SinkError({ message: `cannot write ${path}: ${e instanceof Error ? e.message : String(e)}` })
      })
    return Layer.effect(
      MetricsSink,
      Effect.as(append(columns.join(",") + "\n", writeFile), {
        write: (event: EvalEvent) => append(columns.map((c) => String(event[c])).join(",") + "\n")
      })
    )
  }
}

// ---------------------------------------------------------------------------
// A run with it

/** A repetitive token stream over 16 symbols ("a" to "p"); the fake model does not read the tokens, but batches are drawn from them. */
const data = InMemoryDatasetReader.dataset(
  Uint8Array.from({ length: 20_000 }, (_, i) => (i * 7 + (i >> 3)) % 16),
  Array.from({ length: 16 }, (_, i) => 97 + i)
)

const program = Effect.gen(function*() {
  const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "qlr-csv-example-")))
  const csv = join(dir, "metrics.csv")
  // resolveConfig returns an Either, which an Effect program can yield directly.
  const config = yield* resolveConfig({ preset: "tiny", dataset: "shakespeare_char", policy: "qlearning" })
  const final = yield* runTraining({
    config,
    outDir: join(dir, "run"),
    verbose: false,
    // A short inference measurement: the fake model samples random tokens.
    sampling: { count: 1, tokens: 50, temperature: 0.8, topK: 200, seed: 1 }
  }).pipe(Effect.provide(Layer.mergeAll(FakeModel.layer(), InMemoryDatasetReader.layer(data), CsvMetricsSink.layer(csv))))

  const rows = (yield* Effect.promise(() => readFile(csv, "utf8"))).trim().split("\n")
  console.log(`wrote ${rows.length - 1} evaluations to ${csv}:`)
  for (const row of rows) console.log(`  ${row}`)
  console.log(`final_info: best val loss ${final.best_val_loss.toFixed(4)}, final train loss ${final.final_train_loss.toFixed(4)}`)
})

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
