/**
 * The MetricsSink service: where evaluation events go (a JSONL file, a CSV,
 * memory for tests, ...).
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { SinkError } from "../domain/Errors.js"
import type { EvalEvent } from "../domain/Events.js"

/**
 * The service tag: `runTraining` writes every evaluation event here. Provide
 * {@link JsonlMetricsSink}, {@link MemoryMetricsSink}, or your own with
 * `Layer.succeed(MetricsSink, { write })`.
 */
export class MetricsSink extends Context.Tag("qlr/MetricsSink")<
  MetricsSink,
  {
    /** Record one evaluation; a failure stops the run with a SinkError. */
    readonly write: (event: EvalEvent) => Effect.Effect<void, SinkError>
  }
>() {}
