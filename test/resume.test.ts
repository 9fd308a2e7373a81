/**
 * Exact resume on the real model: a run killed with SIGKILL after its second
 * checkpoint and resumed writes the events of the uninterrupted run, bitwise
 * (the wasm backend is deterministic and every generator is in the checkpoint).
 */
import { describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { qlrBin, readJsonLines, repoRoot, runQlr, sharedData, tempDir, withoutTiming } from "./support/cli.js"


describe("resume after SIGKILL (tiny preset, wasm)", () => {
  it("the resumed run's events equal the uninterrupted run's", async () => {
    const dir = tempDir()
    const args = (out: string) => [
      "run", "--backend", "wasm", "--preset", "tiny", "--policy", "random", "--max-iters", "80", "--eval-interval", "10",
      "--eval-iters", "2", "--dropout", "0.1", "--data-dir", sharedData, "--cache-dir", join(dir, "cache"), "--out", out,
      "--sample-count", "1", "--sample-tokens", "5", "--quiet"
    ]
    const killed = join(dir, "killed")
    const child = spawn(process.execPath, [qlrBin, ...args(killed)], { cwd: repoRoot, stdio: "ignore" })
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)))
    // The third evaluation line is written after the second checkpoint.
    while (readJsonLines(join(killed, "events.jsonl")).length < 3) await new Promise((r) => setTimeout(r, 20))
    child.kill("SIGKILL")
    expect(await exited).toBe("SIGKILL")
    expect(existsSync(join(killed, "final_info.json"))).toBe(false)

    const resumed = await runQlr(["run", "--backend", "wasm", "--resume", killed, "--data-dir", sharedData,
      "--cache-dir", join(dir, "cache"), "--sample-count", "1", "--sample-tokens", "5", "--quiet"])
    expect(resumed.stderr).toBe("")
    expect(resumed.code).toBe(0)
    const whole = join(dir, "whole")
    expect((await runQlr(args(whole))).code).toBe(0)
    const events = readJsonLines(join(killed, "events.jsonl"))
    expect(withoutTiming(events)).toEqual(withoutTiming(readJsonLines(join(whole, "events.jsonl"))))
    expect(events).toHaveLength(9)
  })
})

describe("Ctrl-C on the real model (tiny preset, wasm)", () => {
  it("stops at the next step boundary, not at the next evaluation", async () => {
    const dir = tempDir()
    const out = join(dir, "run")
    const child = spawn(process.execPath, [qlrBin,
      "run", "--backend", "wasm", "--preset", "tiny", "--policy", "cosine", "--max-iters", "5000", "--eval-interval", "2500",
      "--eval-iters", "1", "--data-dir", sharedData, "--cache-dir", join(dir, "cache"), "--out", out, "--quiet"
    ], { cwd: repoRoot })
    let stderr = ""
    child.stderr.on("data", (chunk) => (stderr += String(chunk)))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    // The evaluation at iteration 0 is written; training steps follow.
    while (readJsonLines(join(out, "events.jsonl")).length < 1) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 300))
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    const stoppedAt = Number(/interrupted at iteration (\d+)/.exec(stderr)?.[1])
    // Waiting for the next evaluation would stop at 2500.
    expect(stoppedAt).toBeGreaterThan(0)
    expect(stoppedAt).toBeLessThan(2500)
    expect(existsSync(join(out, "checkpoint.bin"))).toBe(true)
  }, 120_000)
})
