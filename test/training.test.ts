/**
 * Real training on real data: the tiny preset on Tiny Shakespeare, on the
 * wasm backend. Uniform guessing is ln 65 = 4.17, character frequencies alone
 * give 3.31, a bigram table 2.48; a few hundred steps must beat 2.7.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Ref } from "effect"
import { join } from "node:path"
import type { EvalEvent } from "../src/domain/Events.js"
import { resolveConfig } from "../src/domain/ResolveConfig.js"
import { FileDatasetReader } from "../src/layers/FileDatasetReader.js"
import { MemoryMetricsSink } from "../src/layers/JsonlMetricsSink.js"
import { TfjsModel } from "../src/layers/TfjsModel.js"
import { runTraining } from "../src/programs/run.js"
import { sharedData, tempDir } from "./support/cli.js"

describe("real training (tiny preset, wasm, Tiny Shakespeare)", () => {
  for (const policy of ["cosine", "qlearning"] as const) {
    it.live(`${policy}: validation loss falls below 2.7`, () =>
      Effect.gen(function*() {
        const config = Either.getOrThrow(resolveConfig({ preset: "tiny", dataset: "shakespeare_char", policy }))
        const events = yield* Ref.make<ReadonlyArray<EvalEvent>>([])
        const final = yield* runTraining({
          config,
          outDir: join(tempDir(), "run"),
          sampling: { count: 1, tokens: 20, temperature: 0.8, topK: 200, seed: 1 },
          verbose: false
        }).pipe(
          Effect.provide(Layer.mergeAll(
            TfjsModel.layer({ backend: "wasm" }),
            FileDatasetReader.layer({ dataDir: sharedData, cacheDir: tempDir() }),
            MemoryMetricsSink.layer(events)
          ))
        )
        const evals = yield* Ref.get(events)
        expect(evals.map((e) => e.iter)).toEqual([0, 50, 100, 150, 200, 250, 300])
        expect(evals[0]!.val_loss).toBeGreaterThan(4)
        expect(final.best_val_loss).toBeLessThan(2.7)
        expect(final.avg_inference_tokens_per_second).toBeGreaterThan(0)
      }))
  }
})
