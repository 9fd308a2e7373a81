/**
 * Sampling from a trained model, and the inference speed of SPEC §4:
 * average tokens/s over `count` samples of `tokens` new tokens at
 * temperature 0.8, top-k 200.
 * @since 0.1.0
 */
import { Clock, Effect, Either } from "effect"
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { ConfigError, type ModelError } from "../domain/Errors.js"
import { decodeTrainConfig } from "../domain/ResolveConfig.js"
import { deriveSeed } from "../domain/Rng.js"
import { decodeTokens, encodeText, type Vocabulary } from "../domain/Vocabulary.js"
import { Model, type Trainer } from "../services/Model.js"
import { readSnapshot } from "./snapshotFile.js"
import { modelSpecOf } from "./train.js"

/** How to sample: how many samples of how many new tokens, with which settings and seed. */
export interface SampleOptions {
  /** Number of samples. */
  readonly count: number
  /** New tokens per sample. */
  readonly tokens: number
  /** Logits are divided by it before the softmax. */
  readonly temperature: number
  /** Only the `topK` most likely tokens are drawn from. */
  readonly topK: number
  /** Seeds the sampling generator. */
  readonly seed: number
}

/** SPEC §4's inference measurement: 10 samples x 500 tokens, T 0.8, top-k 200. */
export const inferenceDefaults: SampleOptions = { count: 10, tokens: 500, temperature: 0.8, topK: 200, seed: 1337 }

/** nanoGPT starts its samples from a newline; a vocabulary without one (text8) starts from token 0. */
export const defaultPrompt = (vocab: Vocabulary): ReadonlyArray<number> => [Math.max(0, vocab.symbols.indexOf(10))]

/** Generate `count` samples; returns the texts and the mean tokens/s over them. */
export const generateSamples = (
  trainer: Trainer,
  vocab: Vocabulary,
  prompt: ReadonlyArray<number>,
  options: SampleOptions
): Effect.Effect<{ readonly texts: ReadonlyArray<string>; readonly tokensPerSecond: number | null }, ModelError> =>
  Effect.gen(function*() {
    let rng = deriveSeed(options.seed, "sample")
    const texts: Array<string> = []
    const rates: Array<number> = []
    for (let i = 0; i < options.count; i++) {
      const start = yield* Clock.currentTimeNanos
      const out = yield* trainer.generate(prompt, {
        maxNewTokens: options.tokens,
        temperature: options.temperature,
        topK: options.topK,
        rng
      })
      const seconds = Number((yield* Clock.currentTimeNanos) - start) / 1e9
      rng = out.rng
      if (seconds > 0) rates.push(out.tokens.length / seconds)
      texts.push(decodeTokens(vocab, [...prompt, ...out.tokens]))
    }
    return { texts, tokensPerSecond: rates.length > 0 ? rates.reduce((a, b) => a + b, 0) / rates.length : null }
  })

/** Sample from the final weights of a run directory (`qlr sample --run DIR`). */
export const sampleFromRun = (runDir: string, options: SampleOptions, prompt: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const configText = yield* Effect.tryPromise({
        try: () => readFile(join(runDir, "config.json"), "utf8"),
        catch: () => new ConfigError({ message: `${runDir} is not a run directory: it has no config.json` })
      })
      const config = yield* decodeTrainConfig(JSON.parse(configText))
      if (!existsSync(join(runDir, "model.bin")))
        return yield* new ConfigError({
          message: `${runDir} has no model.bin: the run has not finished (continue it with qlr run --resume ${runDir})`
        })
      const { snapshot, meta } = yield* readSnapshot(join(runDir, "model.bin"))
      const vocab = meta as Vocabulary
      const promptIds = yield* Either.mapLeft(
        encodeText(vocab, prompt),
        (problem) => new ConfigError({ message: `--prompt: ${problem}; use symbols of the run's dataset` })
      )
      const model = yield* Model
      const trainer = yield* model.create(modelSpecOf(config, vocab.symbols.length))
      yield* trainer.restore(snapshot)
      return yield* generateSamples(trainer, vocab, promptIds.length > 0 ? Array.from(promptIds) : defaultPrompt(vocab), options)
    })
  )
