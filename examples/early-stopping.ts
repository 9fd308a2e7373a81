/**
 * Early stopping by consuming the training stream directly.
 *
 * `train` is a Stream of events; the consumer decides how much of it to run.
 * Here a real (tiny) GPT trains on Tiny Shakespeare on the tfjs wasm backend,
 * and `Stream.takeUntil` ends training once the val loss has not improved by
 * `MIN_DELTA` for `PATIENCE` evaluations in a row. Ending the stream ends
 * training: no more steps run, and the model's tensors are freed with the
 * stream's scope.
 *
 * The corpus comes from ../shared/data when that directory exists (this
 * repository's layout), else from $QLR_DATA_DIR, the cache, or a download.
 *
 * Run: npm run build && npx tsx examples/early-stopping.ts
 */
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { DatasetReader, type EvalEvent, FileDatasetReader, LrPolicies, resolveConfig, TfjsModel, train } from "qlr"

const PATIENCE = 2
const MIN_DELTA = 0.03

// The tiny preset (2 layers, 64 wide) with batches of 8 and a high peak LR, evaluating every 20 steps
// on 4 batches per split: small enough to stop within seconds. At most 1000 steps.
const config = Either.getOrThrow(
  resolveConfig({
    preset: "tiny",
    dataset: "shakespeare_char",
    policy: "cosine",
    overrides: { max_iters: 1000, batch_size: 8, eval_interval: 20, eval_iters: 4, learning_rate: 4e-3, warmup_iters: 10 }
  })
)

const sharedData = fileURLToPath(new URL("../../shared/data", import.meta.url))

/** The early-stopping rule's state: the best val loss so far and the evaluations since it improved. */
interface Rule {
  readonly best: number
  readonly stale: number
}

/** An evaluation with the rule's state after it. */
interface Progress extends Rule {
  readonly event: EvalEvent
}

const observe = (rule: Rule, event: EvalEvent): readonly [Rule, Progress] => {
  const next = event.val_loss < rule.best - MIN_DELTA ? { best: event.val_loss, stale: 0 } : { ...rule, stale: rule.stale + 1 }
  return [next, { event, ...next }]
}

const program = Effect.gen(function*() {
  const reader = yield* DatasetReader
  const data = yield* reader.load(config.dataset, config.encoding)
  console.log(`${data.name}: ${data.symbols.length} symbols, ${data.train.length} training tokens; up to ${config.max_iters} steps`)

  const stopped = yield* train(config, data).pipe(
    Stream.filter((e): e is EvalEvent => e.type === "eval"),
    // Carry the rule's state from one evaluation to the next.
    Stream.mapAccum<Rule, EvalEvent, Progress>({ best: Infinity, stale: 0 }, observe),
    Stream.tap(({ event, stale }) =>
      Effect.sync(() =>
        console.log(`iter ${String(event.iter).padStart(4)}  val ${event.val_loss.toFixed(4)}  ${stale === 0 ? "improved" : `no improvement (${stale}/${PATIENCE})`}`)
      )
    ),
    // takeUntil keeps the element that satisfies the predicate, then ends the stream (and training).
    Stream.takeUntil(({ stale }) => stale >= PATIENCE),
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray)
  )

  const last = stopped[stopped.length - 1]!
  console.log(
    last.event.iter < config.max_iters
      ? `early stop at iteration ${last.event.iter} of ${config.max_iters}: best val loss ${last.best.toFixed(4)}`
      : `ran all ${config.max_iters} iterations: best val loss ${last.best.toFixed(4)}`
  )
})

program.pipe(
  Effect.provide(
    Layer.mergeAll(
      TfjsModel.layer({ backend: "wasm" }),
      FileDatasetReader.layer(existsSync(sharedData) ? { dataDir: sharedData } : {}),
      LrPolicies.fromConfig(config)
    )
  ),
  Effect.runPromise
).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
