/**
 * Checkpoints: everything a run needs to continue exactly where it was —
 * weights, AdamW moments and step count (the model snapshot), the loop
 * state (iteration, the LR policy's whole state, the batch and eval
 * generators), and how many events were written. One file, written
 * atomically, refused when damaged or from another config or version.
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { join } from "node:path"
import { TrainConfig } from "../domain/Config.js"
import { StateFileError } from "../domain/Errors.js"
import type { AnyLrPolicy } from "../domain/Policy.js"
import type { Trainer } from "../services/Model.js"
import { readSnapshot, writeSnapshot } from "./snapshotFile.js"
import type { LoopState } from "./train.js"

const CHECKPOINT_VERSION = 1

/** The checkpoint file of a run directory. */
export const checkpointPath = (runDir: string) => join(runDir, "checkpoint.bin")

const LoopStateJson = Schema.Struct({
  iter: Schema.Number,
  evaluated: Schema.Boolean,
  policyState: Schema.Unknown,
  batchRng: Schema.Number,
  evalRng: Schema.Number,
  lastLr: Schema.Number,
  elapsed: Schema.Number
})

const CheckpointMeta = Schema.Struct({
  checkpoint_version: Schema.Literal(CHECKPOINT_VERSION),
  config: Schema.Unknown,
  loop: LoopStateJson,
  /** Lines of events.jsonl that belong to the run up to this checkpoint. */
  events: Schema.Number,
  /** Divergence rollbacks so far. */
  rollbacks: Schema.Number
})

/** What a checkpoint restores besides the weights. */
export interface Resumed {
  readonly loop: LoopState
  readonly events: number
  readonly rollbacks: number
}

/** Write the checkpoint of `runDir` atomically (the previous one stays intact until the rename). */
export const writeCheckpoint = (
  runDir: string,
  trainer: Trainer,
  config: TrainConfig,
  policy: AnyLrPolicy,
  progress: Resumed
) =>
  Effect.gen(function*() {
    const snapshot = yield* trainer.snapshot
    const meta: typeof CheckpointMeta.Encoded = {
      checkpoint_version: CHECKPOINT_VERSION,
      config: Schema.encodeSync(TrainConfig)(config),
      loop: { ...progress.loop, policyState: Schema.encodeSync(policy.stateSchema)(progress.loop.policyState) },
      events: progress.events,
      rollbacks: progress.rollbacks
    }
    yield* writeSnapshot(checkpointPath(runDir), snapshot, meta)
  })

/** Read `runDir`'s checkpoint into `trainer`; refuse one from another config or version. */
export const restoreCheckpoint = (runDir: string, trainer: Trainer, config: TrainConfig, policy: AnyLrPolicy) =>
  Effect.gen(function*() {
    const path = checkpointPath(runDir)
    const { snapshot, meta } = yield* readSnapshot(path)
    const refuse = (problem: string) => new StateFileError({ message: `${path} ${problem}` })
    const decoded = yield* Schema.decodeUnknown(CheckpointMeta)(meta).pipe(
      Effect.mapError(() =>
        refuse(`is not a checkpoint of this qlr version (expected checkpoint version ${CHECKPOINT_VERSION}); start a new run`)
      )
    )
    const expected = Schema.encodeSync(TrainConfig)(config)
    // Both sides are encoded by the same schema, so equal configs have equal JSON.
    if (JSON.stringify(decoded.config) !== JSON.stringify(expected))
      return yield* refuse("was written for another config than this run's config.json: it cannot be resumed with it")
    const policyState = yield* Schema.decodeUnknown(policy.stateSchema)(decoded.loop.policyState).pipe(
      Effect.mapError(() => refuse(`holds a ${policy.name} policy state of the wrong shape`))
    )
    yield* trainer.restore(snapshot).pipe(
      Effect.mapError((e) => refuse(`does not fit this model: ${e.message}`))
    )
    return {
      loop: { ...decoded.loop, policyState },
      events: decoded.events,
      rollbacks: decoded.rollbacks
    } satisfies Resumed
  })
