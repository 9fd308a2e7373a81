/**
 * The typed errors of qlr. Each carries a message that names the problem and
 * the fix, ready to be shown to a user as it is.
 * @since 0.1.0
 */
import { Data } from "effect"

/** A user-supplied option or config value is invalid. */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

/** A dataset could not be found, downloaded, verified or prepared. */
export class DatasetError extends Data.TaggedError("DatasetError")<{ readonly message: string }> {}

/** The model or its backend failed (backend missing, out of memory, ...). */
export class ModelError extends Data.TaggedError("ModelError")<{ readonly message: string }> {}

/** Writing metrics or run files failed. */
export class SinkError extends Data.TaggedError("SinkError")<{ readonly message: string }> {}

/** A saved file (Q-table, checkpoint) has the wrong shape, version or checksum. */
export class StateFileError extends Data.TaggedError("StateFileError")<{ readonly message: string }> {}

/** Training produced a NaN or infinite loss. */
export class DivergedError extends Data.TaggedError("DivergedError")<{
  readonly iter: number
  readonly loss: number
  readonly message: string
}> {}

/** The user stopped the run (Ctrl-C); a checkpoint was written. */
export class InterruptedError extends Data.TaggedError("InterruptedError")<{
  readonly iter: number
  readonly message: string
}> {}
