/**
 * The MetricsSink service: where evaluation events go (a JSONL file, a CSV,
 * memory for tests, ...).
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { SinkError } from "../domain/Errors.js"
import type { EvalEvent } from "../domain/Events.js"

export class MetricsSink extends Context.Tag("qlr/MetricsSink")<
  MetricsSink,
  { readonly write: (event: EvalEvent) => Effect.Effect<void, SinkError> }
>() {}
