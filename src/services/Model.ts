/**
 * The Model service: builds a GPT with its AdamW optimizer for a shape and
 * trains it step by step. Implementations: the tfjs GPT on a chosen backend
 * and a deterministic fake for tests (src/layers).
 * @since 0.1.0
 */
import { Context, type Effect, type Scope } from "effect"
import type { Batch } from "../domain/Batches.js"
import type { ModelError } from "../domain/Errors.js"
import type { RngState } from "../domain/Rng.js"

/** The GPT's shape (SPEC §1). */
export interface ModelShape {
  readonly vocab_size: number
  readonly n_layer: number
  readonly n_head: number
  readonly n_embd: number
  readonly block_size: number
  readonly dropout: number
}

/** AdamW and clipping settings (SPEC §1). */
export interface OptimizerSettings {
  readonly weight_decay: number
  readonly beta1: number
  readonly beta2: number
  readonly grad_clip: number
}

/** Everything needed to build a model. */
export interface ModelSpec {
  readonly shape: ModelShape
  readonly optimizer: OptimizerSettings
  /** Seeds the weight init and dropout. */
  readonly seed: number
  /** Rows per forward/backward pass; a larger batch accumulates gradients. */
  readonly micro_batch_size: number
}

/** Where the model runs, as printed and written to config.json. */
export interface BackendInfo {
  readonly backend: string
  /** True only when a GPU device is really in use. */
  readonly gpu: boolean
  readonly description: string
}

/** Weights and optimizer state as plain arrays, for checkpoints and saved weights. */
export interface ModelSnapshot {
  readonly step: number
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly shape: ReadonlyArray<number>; readonly data: Float32Array }>
}

/** Sampling settings (SPEC §4 uses temperature 0.8, top-k 200). */
export interface GenerateOptions {
  readonly maxNewTokens: number
  readonly temperature: number
  readonly topK: number
  readonly rng: RngState
}

/** A built model with its optimizer. */
export interface Trainer {
  readonly info: BackendInfo
  readonly parameterCount: number
  /** One AdamW step at `lr` on the batch (clipped at the global norm); the mean loss of the batch. */
  readonly trainStep: (batch: Batch, lr: number) => Effect.Effect<number, ModelError>
  /** Mean cross-entropy of a batch: forward only, no dropout, no gradient bookkeeping. */
  readonly evalLoss: (batch: Batch) => Effect.Effect<number, ModelError>
  /** Continue `prompt` by sampling; returns the new tokens and the next RNG state. */
  readonly generate: (
    prompt: ReadonlyArray<number>,
    options: GenerateOptions
  ) => Effect.Effect<{ readonly tokens: ReadonlyArray<number>; readonly rng: RngState }, ModelError>
  /** Tensors alive in the backend (0 for models without tensors): a leak check. */
  readonly liveTensors: () => number
  /** Weights, optimizer state and step count, copied out (checkpoints, model.bin). */
  readonly snapshot: Effect.Effect<ModelSnapshot, ModelError>
  /** Load a snapshot taken from a model of the same shape; fails on any mismatch. */
  readonly restore: (snapshot: ModelSnapshot) => Effect.Effect<void, ModelError>
}

/** Builds trainers; the layer chooses the implementation and backend. */
export class Model extends Context.Tag("qlr/Model")<
  Model,
  {
    /** Build a model and its optimizer; closing the scope frees them. */
    readonly create: (spec: ModelSpec) => Effect.Effect<Trainer, ModelError, Scope.Scope>
  }
>() {}
