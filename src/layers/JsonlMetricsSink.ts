/**
 * MetricsSink layers: a JSONL file (one evaluation per line, flushed as it
 * happens so a killed run keeps what it logged) and an in-memory sink.
 * @since 0.1.0
 */
import { Effect, Layer, Ref } from "effect"
import { appendFile } from "node:fs/promises"
import { SinkError } from "../domain/Errors.js"
import type { EvalEvent } from "../domain/Events.js"
import { MetricsSink } from "../services/MetricsSink.js"

/** A MetricsSink that appends to a JSONL file (a run's events.jsonl). */
export const JsonlMetricsSink = {
  /** Append every event to `path` as one JSON line. */
  layer: (path: string): Layer.Layer<MetricsSink> =>
    Layer.succeed(MetricsSink, {
      write: (event) =>
        Effect.tryPromise({
          try: () => appendFile(path, JSON.stringify(event) + "\n"),
          catch: (e) => new SinkError({ message: `cannot append to ${path}: ${e instanceof Error ? e.message : String(e)}` })
        })
    })
}

/** A MetricsSink that keeps the events in a Ref. */
export const MemoryMetricsSink = {
  /** Keep every event in `ref` (tests, notebooks). */
  layer: (ref: Ref.Ref<ReadonlyArray<EvalEvent>>): Layer.Layer<MetricsSink> =>
    Layer.succeed(MetricsSink, { write: (event) => Ref.update(ref, (all) => [...all, event]) })
}
