/** Shared test fixtures: configs, an in-memory dataset, a model that records the LRs it is given. */
import { Effect, Either, Layer } from "effect"
import type { TrainConfig } from "../../src/domain/Config.js"
import { resolveConfig, type RunRequest } from "../../src/domain/ResolveConfig.js"
import type { PreparedDataset } from "../../src/services/DatasetReader.js"
import { InMemoryDatasetReader } from "../../src/layers/InMemoryDatasetReader.js"
import { Model } from "../../src/services/Model.js"
import { FakeModel, type FakeLandscape } from "../../src/layers/FakeModel.js"

/** Resolve a request or throw: tests pass valid requests. */
export const configOf = (request: Partial<RunRequest> = {}): TrainConfig =>
  Either.getOrThrow(resolveConfig({ preset: "tiny", dataset: "shakespeare_char", ...request }))

/** A small synthetic dataset (no file access). */
export const syntheticDataset = (vocab = 8, length = 4096): PreparedDataset =>
  InMemoryDatasetReader.dataset(
    Uint8Array.from({ length }, (_, i) => (i * 7 + (i >> 3)) % vocab),
    Array.from({ length: vocab }, (_, i) => 97 + i),
    "synthetic"
  )

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
export const syntheticReader = (data: PreparedDataset = syntheticDataset()) => InMemoryDatasetReader.layer(data)
