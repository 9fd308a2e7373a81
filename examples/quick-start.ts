/**
 * The shortest complete program: train a tiny GPT on Tiny Shakespeare under
 * the Q-learning LR agent and print every evaluation. (The README's "Use as a
 * library" example; the dataset comes from $QLR_DATA_DIR, the cache or a
 * download.)
 *
 * Run: npm run build && npx tsx examples/quick-start.ts
 */
import { Console, Effect, Either, Layer, Stream } from "effect"
import { DatasetReader, FileDatasetReader, LrPolicies, resolveConfig, TfjsModel, train } from "qlr"

const config = Either.getOrThrow(
  resolveConfig({ preset: "tiny", dataset: "shakespeare_char", policy: "qlearning", overrides: { max_iters: 100 } })
)

const program = Effect.gen(function*() {
  const data = yield* (yield* DatasetReader).load(config.dataset, config.encoding)
  yield* train(config, data).pipe(
    Stream.filter((e) => e.type === "eval"),
    Stream.runForEach((e) => Console.log(`iter ${e.iter}: val loss ${e.val_loss.toFixed(3)}, next LR ${e.next_lr.toExponential(2)}`))
  )
})

program.pipe(
  Effect.provide(Layer.mergeAll(TfjsModel.layer({ backend: "wasm" }), FileDatasetReader.layer(), LrPolicies.fromConfig(config))),
  Effect.runPromise
)
