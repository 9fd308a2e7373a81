import { Either } from "effect"
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { decodeTrainConfig } from "../src/domain/ResolveConfig.js"
import { configHash, decodeSweepSpec, expandSweep } from "../src/domain/Sweep.js"
import { repoRoot, runQlr, sharedData, tempDir } from "./support/cli.js"

const fixture = JSON.parse(readFileSync(join(repoRoot, "test", "fixtures", "sweep-tiny.json"), "utf8")) as Record<string, unknown>
const readJson = (path: string) => JSON.parse(readFileSync(path, "utf8"))

/** The fixture with some fields replaced, written to a temp file. */
const sweepFile = (changes: Record<string, unknown>) => {
  const path = join(tempDir("qlr-sweep-spec-"), "sweep.json")
  writeFileSync(path, JSON.stringify({ ...fixture, ...changes }))
  return path
}

const sweep = (file: string, out: string, ...extra: Array<string>) =>
  runQlr(["sweep", file, "--out", out, "--backend", "fake", "--data-dir", sharedData, "--cache-dir", join(out, "..", "cache"), ...extra])

const SLOW = 180_000

describe("qlr sweep", () => {
  // Two seeds of a baseline and of a control whose doubled peak LR diverges on the fake landscape.
  const spec = { datasets: ["shakespeare_char"], variants: ["baseline", "baseline-high-lr"], seeds: [1, 2] }
  const file = sweepFile(spec)
  const out = join(tempDir(), "sweep")
  const expected = Either.getOrThrow(expandSweep(Either.getOrThrow(decodeSweepSpec({ ...fixture, ...spec }, "test"))))
  const finalInfoTimes = () => expected.map((r) => statSync(join(out, "runs", r.hash, "final_info.json")).mtimeMs)

  it("runs every dataset x variant x seed into a directory named by its config hash", async () => {
    const result = await sweep(file, out, "--jobs", "2")
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(readdirSync(join(out, "runs")).sort()).toEqual(expected.map((r) => r.hash).sort())
    for (const r of expected) {
      expect(r.hash).toMatch(/^[0-9a-f]{16}$/)
      const config = Either.getOrThrow(decodeTrainConfig(readJson(join(out, "runs", r.hash, "config.json"))))
      expect(configHash(config)).toBe(r.hash)
      expect(config).toMatchObject({ dataset: r.dataset, seed: r.seed })
      expect(readJson(join(out, "runs", r.hash, "config.json")).run.variant).toBe(r.variant)
      expect(readJson(join(out, "runs", r.hash, "sweep_record.json"))).toMatchObject({ jobs: 2, shared_machine: true })
    }
  }, SLOW)

  it("counts a diverged run as a result, left out of the means", () => {
    const diverged = expected.filter((r) => r.variant === "baseline-high-lr")
    for (const r of diverged) {
      expect(readJson(join(out, "runs", r.hash, "final_info.json")).diverged).toBe(true)
      expect(readJson(join(out, "runs", r.hash, "sweep_record.json")).status).toBe("diverged")
    }
    const aggregate = readJson(join(out, "baseline-high-lr", "final_info.json")).shakespeare_char
    expect(aggregate.n).toBe(0)
    expect(aggregate.diverged_seeds).toEqual([1, 2])
    expect(aggregate.final_info_dict.diverged).toEqual([true, true])
    expect(aggregate.means.best_val_loss_mean).toBeNull()
    expect(aggregate.stderrs.best_val_loss_stderr).toBeNull()
  })

  it("writes the published aggregate layout: means, stderrs (std n-1 / sqrt n) and per-seed lists", () => {
    const aggregate = readJson(join(out, "baseline", "final_info.json"))
    expect(Object.keys(aggregate)).toEqual(["shakespeare_char"])
    const { means, stderrs, final_info_dict: perSeed } = aggregate.shakespeare_char
    const keys = ["final_train_loss", "best_val_loss", "total_train_time", "avg_inference_tokens_per_second"]
    expect(Object.keys(means)).toEqual(keys.map((k) => `${k}_mean`))
    expect(Object.keys(stderrs)).toEqual(keys.map((k) => `${k}_stderr`))
    const vals = expected
      .filter((r) => r.variant === "baseline")
      .map((r) => readJson(join(out, "runs", r.hash, "final_info.json")).best_val_loss as number)
    expect(perSeed.best_val_loss).toEqual(vals)
    expect(perSeed.seed).toEqual([1, 2])
    expect(means.best_val_loss_mean).toBeCloseTo((vals[0]! + vals[1]!) / 2, 12)
    // Two values: sample std is |a - b| / sqrt 2, the stderr that over sqrt 2.
    expect(stderrs.best_val_loss_stderr).toBeCloseTo(Math.abs(vals[0]! - vals[1]!) / 2, 12)
  })

  it("skips finished runs when the sweep is run again", async () => {
    const before = finalInfoTimes()
    const result = await sweep(file, out, "--jobs", "2")
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/planned 4; done earlier \(skipped\) 4; unfinished \(rerun\) 0; running 0,/)
    expect(finalInfoTimes()).toEqual(before)
  }, SLOW)

  it("reruns an unfinished run from scratch, and only that one", async () => {
    const target = expected.find((r) => r.variant === "baseline")!
    const runDir = join(out, "runs", target.hash)
    rmSync(join(runDir, "final_info.json"))
    writeFileSync(join(runDir, "partial.txt"), "left by an interrupted run")
    const result = await sweep(file, out, "--jobs", "2")
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/planned 4; done earlier \(skipped\) 3; unfinished \(rerun\) 1; running 1, 1 at a time/)
    expect(existsSync(join(runDir, "final_info.json"))).toBe(true)
    expect(existsSync(join(runDir, "partial.txt"))).toBe(false)
    // One run at a time: nothing shared the machine with it.
    expect(readJson(join(runDir, "sweep_record.json"))).toMatchObject({ shared_machine: false, status: "finished" })
  }, SLOW)

  it("refuses to count fake-model runs as real ones (the hash does not cover the backend), writing nothing", async () => {
    const manifest = readFileSync(join(out, "sweep.json"), "utf8")
    const result = await runQlr(["sweep", file, "--out", out, "--backend", "wasm", "--data-dir", sharedData])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/holds 4 run\(s\) trained on the fake model .* but this sweep uses backend wasm: use another --out/)
    expect(readFileSync(join(out, "sweep.json"), "utf8")).toBe(manifest)
  }, SLOW)

  it("reports a failing run at the end without stopping the others, and exits non-zero", async () => {
    const failing = sweepFile({
      datasets: [{ name: "file:test/fixtures/no-such-corpus.txt", seeds: [1] }, { name: "shakespeare_char", seeds: [1] }],
      variants: ["baseline"]
    })
    const dir = join(tempDir(), "sweep")
    const result = await sweep(failing, dir)
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/1 of 2 runs failed/)
    expect(result.stderr).toMatch(/file:test\/fixtures\/no-such-corpus.txt \/ baseline \/ seed 1 .*not found/)
    const manifest = readJson(join(dir, "sweep.json"))
    const [bad, good] = manifest.runs as Array<{ hash: string }>
    expect(readJson(join(dir, "runs", bad!.hash, "sweep_record.json")).status).toBe("failed")
    expect(existsSync(join(dir, "runs", good!.hash, "final_info.json"))).toBe(true)
    const aggregate = readJson(join(dir, "baseline", "final_info.json"))
    expect(aggregate["file:test/fixtures/no-such-corpus.txt"]).toMatchObject({ n: 0, failed_seeds: [1] })
    expect(aggregate.shakespeare_char.n).toBe(1)
    // One seed: statistics that need two are null, never NaN.
    expect(aggregate.shakespeare_char.stderrs.best_val_loss_stderr).toBeNull()
  }, SLOW)

  const refused: ReadonlyArray<readonly [string, Record<string, unknown>, RegExp]> = [
    ["an unknown variant", { variants: ["baseline", "qlearn"] }, /variants.1: unknown variant "qlearn": use one of baseline, qlearning/],
    ["a misspelt override", { overrides: { max_iter: 10 } }, /max_iter/],
    ["a repeated seed", { seeds: [1, 1] }, /seeds must not repeat/],
    ["an invalid override value", { overrides: { max_iters: 0 } }, /--max-iters \(max_iters\)/]
  ]
  for (const [what, changes, message] of refused) {
    it(`refuses a sweep file with ${what}: one message, nothing run`, async () => {
      const dir = join(tempDir(), "sweep")
      const result = await sweep(sweepFile(changes), dir)
      expect(result.code).not.toBe(0)
      expect(result.stderr).toMatch(message)
      expect(existsSync(join(dir, "runs"))).toBe(false)
    }, SLOW)
  }
})

describe("sweep files", () => {
  it("expands the shipped sweeps, datasets outermost, with distinct hashes", () => {
    for (const name of ["paper.json", "cpu.json"]) {
      const spec = Either.getOrThrow(decodeSweepSpec(readJson(join(repoRoot, "sweeps", name)), name))
      const runs = Either.getOrThrow(expandSweep(spec))
      expect(new Set(runs.map((r) => r.hash)).size).toBe(runs.length)
      expect(runs[0]!.variant).toBe("baseline")
    }
  })

  it("paper.json is the paper's grid: paper preset, 3 shakespeare seeds, 1 for enwik8 and text8", () => {
    const spec = Either.getOrThrow(decodeSweepSpec(readJson(join(repoRoot, "sweeps", "paper.json")), "paper.json"))
    const runs = Either.getOrThrow(expandSweep(spec))
    const seedsOf = (dataset: string) => new Set(runs.filter((r) => r.dataset === dataset).map((r) => r.seed)).size
    expect(spec.preset).toBe("paper")
    expect([seedsOf("shakespeare_char"), seedsOf("enwik8"), seedsOf("text8")]).toEqual([3, 1, 1])
    expect(runs.find((r) => r.dataset === "enwik8")!.config.max_iters).toBe(100000)
    for (const v of ["baseline", "qlearning", "initial-lr", "reward-signal", "epsilon-decay"]) expect(spec.variants).toContain(v)
  })
})
