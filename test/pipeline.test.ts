import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import type { EvalEvent } from "../src/domain/Events.js"
import { warmupCosineLr } from "../src/domain/Schedules.js"
import { LrPolicies } from "../src/layers/LrPolicies.js"
import { train } from "../src/programs/train.js"
import { withoutTiming } from "./support/cli.js"
import { configOf, recordingFakeModel, syntheticDataset } from "./support/fixtures.js"
import type { TrainConfig } from "../src/domain/Config.js"

const data = syntheticDataset()

const runFake = (config: TrainConfig) =>
  Effect.gen(function*() {
    const lrs: Array<number> = []
    const events = yield* train(config, data).pipe(
      Stream.filter((e): e is EvalEvent => e.type === "eval"),
      Stream.runCollect,
      Effect.provide(LrPolicies.fromConfig(config)),
      Effect.provide(recordingFakeModel(lrs))
    )
    return { events: Chunk.toReadonlyArray(events), lrs }
  })


describe("training stream on the fake model", () => {
  for (const policy of ["constant", "cosine", "exp-decay", "qlearning", "random"] as const) {
    it.effect(`${policy}: one evaluation per interval and at the end, one step per iteration`, () =>
      Effect.gen(function*() {
        const config = configOf({ policy, overrides: { max_iters: 120, eval_interval: 25 } })
        const { events, lrs } = yield* runFake(config)
        expect(events.map((e) => e.iter)).toEqual([0, 25, 50, 75, 100, 120])
        expect(lrs).toHaveLength(120)
        for (const e of events) expect(Number.isFinite(e.val_loss)).toBe(true)
      }))
  }

  it.effect("cosine: the LR of every step equals the warmup-cosine formula", () =>
    Effect.gen(function*() {
      const config = configOf({ policy: "cosine" })
      const { lrs } = yield* runFake(config)
      lrs.forEach((lr, iter) => expect(lr).toBe(warmupCosineLr(config, iter)))
      expect(lrs[0]).toBeGreaterThan(0)
    }))

  for (const policy of ["qlearning", "random", "exp-decay"] as const) {
    it.effect(`${policy}: the LR chosen at an evaluation is the LR of every step until the next`, () =>
      Effect.gen(function*() {
        const config = configOf({ policy, overrides: { max_iters: 400, eval_interval: 40 } })
        const { events, lrs } = yield* runFake(config)
        const afterWarmup = events.filter((e) => e.iter >= config.warmup_iters && e.iter < config.max_iters)
        expect(afterWarmup.length).toBeGreaterThan(5)
        for (const e of afterWarmup) {
          const until = Math.min(e.iter + config.eval_interval, config.max_iters)
          for (let i = e.iter; i < until; i++) expect(lrs[i]).toBe(e.next_lr)
        }
        // `lr` of an event is the LR of the step just before it.
        for (const e of events.filter((e) => e.iter > 0)) expect(e.lr).toBe(lrs[e.iter - 1])
        if (policy !== "exp-decay") {
          // The agent changed the LR at least once and recorded its decisions.
          expect(new Set(afterWarmup.map((e) => e.next_lr)).size).toBeGreaterThan(1)
          for (const e of afterWarmup) {
            expect(e.action).toBeDefined()
            expect(e.state).toBeDefined()
            expect(e.epsilon).toBeDefined()
            expect(e.next_lr).toBeCloseTo(Math.min(Math.max(e.lr * e.action!, config.min_lr), 10 * config.learning_rate), 15)
          }
        }
      }))
  }

  it.effect("same seed: same decisions and losses; another seed: different", () =>
    Effect.gen(function*() {
      const config = configOf({ policy: "random", overrides: { max_iters: 200, eval_interval: 20 } })
      const a = yield* runFake(config)
      const b = yield* runFake(config)
      const c = yield* runFake(configOf({ policy: "random", overrides: { max_iters: 200, eval_interval: 20, seed: 7 } }))
      expect(withoutTiming(a.events)).toEqual(withoutTiming(b.events))
      expect(a.lrs).toEqual(b.lrs)
      expect(withoutTiming(c.events)).not.toEqual(withoutTiming(a.events))
    }))
})
