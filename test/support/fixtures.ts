/** Shared test fixtures: configs, an in-memory dataset, a model that records the LRs it is given. */
import { Effect, Either, Layer } from "effect"
import type { TrainConfig } from "../../src/domain/Config.js"
import { resolveConfig, type RunRequest } from "../../src/domain/ResolveConfig.js"
import { DatasetReader, type PreparedDataset } from "../../src/services/DatasetReader.js"
import { Model } from "../../src/services/Model.js"
import { FakeModel, type FakeLandscape } from "../../src/layers/FakeModel.js"

/** Resolve a request or throw: tests pass valid requests. */
export const configOf = (request: Partial<RunRequest> = {}): TrainConfig =>
  Either.getOrThrow(resolveConfig({ preset: "tiny", dataset: "shakespeare_char", ...request }))

/** A small synthetic dataset (no file access). */
export const syntheticDataset = (vocab = 8, length = 4096): PreparedDataset => {
  const tokens = Uint8Array.from({ length }, (_, i) => (i * 7 + (i >> 3)) % vocab)
  return {
    name: "synthetic",
    encoding: "chars",
    symbols: Array.from({ length: vocab }, (_, i) => 97 + i),
    train: tokens.subarray(0, (length * 9) / 10),
    val: tokens.subarray((length * 9) / 10),
    test: null,
    sourceSha256: "0".repeat(64)
  }
}

/** The fake model, with every LR passed to a training step appended to `lrs`. */
export const recordingFakeModel = (lrs: Array<number>, landscape: Partial<FakeLandscape> = {}) =>
  Layer.effect(
    Model,
    Effect.map(Model, (inner) => ({
      create: (spec) =>
        Effect.map(inner.create(spec), (trainer) => ({
          ...trainer,
          trainStep: (batch, lr) => {
            lrs.push(lr)
            return trainer.trainStep(batch, lr)
          }
        }))
    }))
  ).pipe(Layer.provide(FakeModel.layer(landscape)))

/** A DatasetReader that serves the synthetic dataset whatever is asked. */
export const syntheticReader = (data: PreparedDataset = syntheticDataset()) =>
  Layer.succeed(DatasetReader, { load: () => Effect.succeed(data) })
