import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import type { TrainConfig } from "../src/domain/Config.js"
import { SinkError } from "../src/domain/Errors.js"
import { decodeAgentFile, DIVERGED_STATE } from "../src/domain/QLearning.js"
import { warmupCosineLr } from "../src/domain/Schedules.js"
import { FakeModel, type FakeLandscape } from "../src/layers/FakeModel.js"
import { JsonlMetricsSink } from "../src/layers/JsonlMetricsSink.js"
import { runTraining, type RunJob } from "../src/programs/run.js"
import { MetricsSink } from "../src/services/MetricsSink.js"
import { readJsonLines, tempDir, withoutTiming } from "./support/cli.js"
import { configOf, syntheticReader } from "./support/fixtures.js"

const sampling = { count: 1, tokens: 5, temperature: 0.8, topK: 200, seed: 1 }

const run = (job: Omit<RunJob, "sampling" | "verbose">, landscape: Partial<FakeLandscape> = {}, sink?: Layer.Layer<MetricsSink>) =>
  runTraining({ ...job, sampling, verbose: false }).pipe(
    Effect.provide(Layer.mergeAll(
      FakeModel.layer(landscape),
      syntheticReader(),
      sink ?? JsonlMetricsSink.layer(join(job.outDir, "events.jsonl"))
    )),
    Effect.either
  )

const events = (dir: string) => withoutTiming(readJsonLines(join(dir, "events.jsonl"))) as Array<Record<string, any>>

/** A JSONL sink that fails on its `n`-th write: a crash in the middle of a run. */
const crashingSink = (path: string, n: number) =>
  Layer.effect(
    MetricsSink,
    Effect.map(Effect.provide(MetricsSink, JsonlMetricsSink.layer(path)), (inner) => {
      let writes = 0
      return {
        write: (event) => (++writes === n ? Effect.fail(new SinkError({ message: "simulated crash" })) : inner.write(event))
      }
    })
  )

const agentConfig: TrainConfig = configOf({ policy: "random", overrides: { max_iters: 200, eval_interval: 20 } })

describe("checkpoints and resume (fake model)", () => {
  it.effect("a run that crashed after its third evaluation resumes to the events of an uninterrupted run", () =>
    Effect.gen(function*() {
      const whole = join(tempDir(), "whole")
      const crashed = join(tempDir(), "crashed")
      expect(Either.isRight(yield* run({ config: agentConfig, outDir: whole }))).toBe(true)
      const first = yield* run({ config: agentConfig, outDir: crashed }, {}, crashingSink(join(crashed, "events.jsonl"), 4))
      expect(Either.isLeft(first)).toBe(true)
      expect(events(crashed)).toHaveLength(3)
      const resumed = yield* run({ config: agentConfig, outDir: crashed, resume: true })
      expect(Either.isRight(resumed)).toBe(true)
      expect(events(crashed)).toEqual(events(whole))
      const finals = [whole, crashed].map((d) => JSON.parse(readFileSync(join(d, "final_info.json"), "utf8")))
      expect(finals[1].best_val_loss).toBe(finals[0].best_val_loss)
      expect(finals[1].final_train_loss).toBe(finals[0].final_train_loss)
    }))

  it.effect("a damaged checkpoint is refused", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      yield* run({ config: agentConfig, outDir: dir }, {}, crashingSink(join(dir, "events.jsonl"), 3))
      const path = join(dir, "checkpoint.bin")
      const bytes = readFileSync(path)
      bytes[bytes.length - 3] ^= 0xff
      writeFileSync(path, bytes)
      const resumed = yield* run({ config: agentConfig, outDir: dir, resume: true })
      expect(Either.isLeft(resumed) && resumed.left.message).toMatch(/checkpoint\.bin is damaged: its checksum does not match/)
    }))

  it.effect("a checkpoint from another config is refused", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      yield* run({ config: agentConfig, outDir: dir }, {}, crashingSink(join(dir, "events.jsonl"), 3))
      const other = configOf({ policy: "random", overrides: { max_iters: 300, eval_interval: 20 } })
      const resumed = yield* run({ config: other, outDir: dir, resume: true })
      expect(Either.isLeft(resumed) && resumed.left.message).toMatch(/written for another config/)
    }))

  it.effect("resuming a finished run, or a directory without a checkpoint, is refused", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      yield* run({ config: agentConfig, outDir: dir })
      const again = yield* run({ config: agentConfig, outDir: dir, resume: true })
      expect(Either.isLeft(again) && again.left.message).toMatch(/already finished/)
      const empty = yield* run({ config: agentConfig, outDir: tempDir(), resume: true })
      expect(Either.isLeft(empty) && empty.left.message).toMatch(/no checkpoint there/)
    }))
})

describe("divergence (fake model with an injected NaN)", () => {
  it.effect("default: stops, records diverged with the iteration, fails", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      const result = yield* run({ config: configOf({ policy: "cosine" }), outDir: dir }, { nan_at_step: 130 })
      expect(Either.isLeft(result) && result.left._tag).toBe("DivergedError")
      const final = JSON.parse(readFileSync(join(dir, "final_info.json"), "utf8"))
      expect(final.diverged).toBe(true)
      expect(final.diverged_iter).toBe(130)
      expect(events(dir).map((e) => e.iter)).toEqual([0, 50, 100])
    }))

  it.effect("rollback: reloads the last checkpoint, scales the LR down and finishes", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      const config = configOf({ policy: "cosine", overrides: { on_divergence: "rollback" } })
      const result = yield* run({ config, outDir: dir }, { nan_at_step: 130 })
      expect(Either.isRight(result)).toBe(true)
      const final = JSON.parse(readFileSync(join(dir, "final_info.json"), "utf8"))
      expect(final.rollbacks).toBe(1)
      expect(final.diverged).toBeUndefined()
      const evs = events(dir)
      expect(evs.map((e) => e.iter)).toEqual([0, 50, 100, 150, 200, 250, 300])
      for (const e of evs.filter((e) => e.iter > 100)) expect(e.lr).toBeCloseTo(0.5 * warmupCosineLr(config, e.iter - 1), 12)
    }))

  it.effect("rollback with the agent: the agent is told (diverged state, penalty) and the run finishes", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      const agentOut = join(dir, "..", "agent.json")
      const config = configOf({ policy: "qlearning", overrides: { on_divergence: "rollback" } })
      const result = yield* run({ config, outDir: dir, agentOut }, { nan_at_step: 130 })
      expect(Either.isRight(result)).toBe(true)
      const agent = Either.getOrThrow(decodeAgentFile(readFileSync(agentOut, "utf8")))
      expect(agent.q_table[DIVERGED_STATE]).toBeDefined()
      expect(Object.values(agent.q_table).flat().some((q) => q < 0)).toBe(true)
    }))

  it.effect("a divergence that comes back: the LR is scaled down again at each rollback, at most max_rollbacks times", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      // A peak LR far above the fake landscape's divergence threshold (20 x its best LR, 2e-3): every rollback diverges again.
      const config = configOf({
        policy: "constant",
        overrides: { on_divergence: "rollback", max_rollbacks: 2, learning_rate: 10, min_lr: 1 }
      })
      const result = yield* run({ config, outDir: dir })
      expect(Either.isLeft(result) && result.left._tag).toBe("DivergedError")
      const final = JSON.parse(readFileSync(join(dir, "final_info.json"), "utf8"))
      expect(final).toMatchObject({ diverged: true, rollbacks: 2 })
      expect(Either.isLeft(result) && result.left.message).toMatch(/at LR 2\.500e\+0/)
    }))

  it.effect("rollback gives up after max_rollbacks and records the divergence", () =>
    Effect.gen(function*() {
      const dir = join(tempDir(), "run")
      const config = configOf({ policy: "cosine", overrides: { on_divergence: "rollback", max_rollbacks: 0 } })
      const result = yield* run({ config, outDir: dir }, { nan_at_step: 130 })
      expect(Either.isLeft(result)).toBe(true)
      expect(JSON.parse(readFileSync(join(dir, "final_info.json"), "utf8")).diverged).toBe(true)
    }))
})
