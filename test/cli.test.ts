import { describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { qlrBin, readJsonLines, repoRoot, runQlr, sharedData, tempDir, withoutTiming } from "./support/cli.js"


const fakeRun = (out: string, ...extra: Array<string>) => [
  "run", "--backend", "fake", "--preset", "tiny", "--dataset", "shakespeare_char", "--data-dir", sharedData,
  "--cache-dir", join(out, "..", "cache"), "--out", out, "--sample-count", "1", "--sample-tokens", "20", "--quiet", ...extra
]

describe("qlr CLI", () => {
  it("run writes config.json, events.jsonl and final_info.json", async () => {
    const out = join(tempDir(), "run")
    const result = await runQlr(fakeRun(out, "--policy", "qlearning", "--max-iters", "200", "--eval-interval", "20"))
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"))
    expect(config.max_iters).toBe(200)
    expect(config.policy.kind).toBe("qlearning")
    expect(config.run.backend).toBe("fake")
    expect(config.run.gpu).toBe(false)
    const events = readJsonLines(join(out, "events.jsonl"))
    expect(events).toHaveLength(11)
    for (const e of events) {
      expect(e.type).toBe("eval")
      for (const key of ["iter", "train_loss", "val_loss", "lr"]) expect(typeof e[key]).toBe("number")
    }
    const decisions = events.filter((e) => (e.iter as number) >= config.warmup_iters && (e.iter as number) < 200)
    for (const e of decisions) for (const key of ["state", "action", "reward", "epsilon"]) expect(e).toHaveProperty(key)
    const final = JSON.parse(readFileSync(join(out, "final_info.json"), "utf8"))
    for (const key of ["final_train_loss", "best_val_loss", "total_train_time", "avg_inference_tokens_per_second"])
      expect(final).toHaveProperty(key)
    expect(final.final_train_loss).toBe(events[events.length - 1]!.train_loss)
    expect(final.best_val_loss).toBe(Math.min(...events.map((e) => e.val_loss as number)))
  })

  it("run --config reruns a run's config.json to the same events", async () => {
    const dir = tempDir()
    const first = await runQlr(fakeRun(join(dir, "a"), "--policy", "random", "--max-iters", "100", "--eval-interval", "25"))
    expect(first.code).toBe(0)
    const second = await runQlr(fakeRun(join(dir, "b"), "--config", join(dir, "a", "config.json")))
    expect(second.code).toBe(0)
    expect(withoutTiming(readJsonLines(join(dir, "b", "events.jsonl")))).toEqual(withoutTiming(readJsonLines(join(dir, "a", "events.jsonl"))))
  })

  const refused: ReadonlyArray<readonly [string, ReadonlyArray<string>, RegExp]> = [
    ["an unknown preset", ["--preset", "huge"], /unknown preset 'huge': use --preset with one of tiny, cpu, paper/],
    ["an unknown policy", ["--policy", "sgdr"], /unknown policy 'sgdr': use --policy/],
    ["an unknown backend", ["--backend", "tpu"], /unknown backend 'tpu': use --backend/],
    ["an unknown dataset", ["--dataset", "wikitext"], /unknown dataset 'wikitext'/],
    ["a non-positive LR", ["--lr", "0"], /--lr \(learning_rate\)/],
    ["n_embd not divisible by n_head", ["--n-embd", "30", "--n-head", "4"], /n_embd \(30\) must be divisible by n_head \(4\)/],
    ["an agent setting out of range, once and naming its flag", ["--epsilon", "2"], /^qlr: invalid config:\n--epsilon \(policy\.epsilon\): Expected a number between 0 and 1, actual 2\n$/],
    ["an agent with a single action", ["--agent-factors", "1"], /an agent needs at least two distinct actions/],
    ["an agent's max LR below the peak LR", ["--max-lr", "1e-4"], /max_lr \(0\.0001\) is below the peak LR \(0\.001\)/],
    ["agent settings with a schedule", ["--policy", "cosine", "--alpha", "0.5"], /agent settings \(--alpha\) apply to the Q-learning agent only/],
    ["a negative --checkpoint-every", ["--checkpoint-every", "-1"], /--checkpoint-every must be 0 \(never\) or a positive/]
  ]
  for (const [what, args, message] of refused) {
    it(`refuses ${what}: one message, non-zero exit, nothing written`, async () => {
      const out = join(tempDir(), "run")
      // The case's flags replace the defaults (a flag given twice is a usage error of its own).
      const flags = new Map([["--backend", "fake"], ["--preset", "tiny"], ["--data-dir", sharedData], ["--out", out]])
      for (let i = 0; i < args.length; i += 2) flags.set(args[i]!, args[i + 1]!)
      const result = await runQlr(["run", ...[...flags].flat()])
      expect(result.code).not.toBe(0)
      expect(result.stdout + result.stderr).toMatch(message)
      expect(existsSync(out)).toBe(false)
    })
  }

  it("refuses an existing non-empty --out and leaves it untouched", async () => {
    const out = join(tempDir(), "run")
    mkdirSync(out)
    writeFileSync(join(out, "keep.txt"), "mine")
    const result = await runQlr(fakeRun(out))
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/already exists and is not empty/)
    expect(readFileSync(join(out, "keep.txt"), "utf8")).toBe("mine")
    expect(existsSync(join(out, "config.json"))).toBe(false)
  })

  it("refuses --eval-split test on a dataset without a test split", async () => {
    const out = join(tempDir(), "run")
    const result = await runQlr(fakeRun(out, "--eval-split", "test"))
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/has no test split/)
    expect(existsSync(out)).toBe(false)
  })

  it("--resume refuses a directory that is not a run, and flags that would change the run", async () => {
    const notRun = tempDir()
    const missing = await runQlr(["run", "--resume", notRun, "--backend", "fake"])
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toMatch(/--resume .*: not a run directory written by qlr run/)
    const out = join(tempDir(), "run")
    expect((await runQlr(fakeRun(out, "--max-iters", "40", "--eval-interval", "20", "--checkpoint-every", "1"))).code).toBe(0)
    const changed = await runQlr(["run", "--resume", out, "--backend", "fake", "--max-iters", "500", "--alpha", "0.5"])
    expect(changed.code).not.toBe(0)
    expect(changed.stderr).toMatch(/so --max-iters, agent settings \(--alpha, --epsilon, \.\.\.\) cannot be combined with it; .*qlr run --config DIR\/config\.json/)
  })

  it("refuses a corpus whose splits are too short for block_size, naming the split and the fix", async () => {
    const dir = tempDir()
    const corpus = join(dir, "short.txt")
    writeFileSync(corpus, "to be or not to be, that is the question. ".repeat(5))
    const out = join(dir, "run")
    const result = await runQlr(["run", "--backend", "fake", "--preset", "tiny", "--dataset", `file:${corpus}`,
      "--cache-dir", join(dir, "cache"), "--out", out, "--quiet"])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/its val split has 10 tokens, too few for one window of block_size 64 .*use a smaller --block-size/)
    expect(result.stderr).not.toMatch(/at \w+ \(/)
    expect(existsSync(out)).toBe(false)
  })

  it("Ctrl-C stops at a step boundary with a checkpoint; --resume then gives the uninterrupted run's events", async () => {
    const dir = tempDir()
    const args = (out: string) => fakeRun(out, "--policy", "random", "--max-iters", "60000", "--eval-interval", "6000")
    const interrupted = join(dir, "interrupted")
    const child = spawn(process.execPath, [qlrBin, ...args(interrupted)], { cwd: repoRoot })
    let stderr = ""
    child.stderr.on("data", (chunk) => (stderr += String(chunk)))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    const eventsFile = join(interrupted, "events.jsonl")
    while (readJsonLines(eventsFile).length < 2) {
      await new Promise((r) => setTimeout(r, 20))
    }
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    expect(stderr).toMatch(/interrupted at iteration \d+; checkpoint written\. Continue with: qlr run --resume /)
    expect(existsSync(join(interrupted, "checkpoint.bin"))).toBe(true)
    expect(existsSync(join(interrupted, "final_info.json"))).toBe(false)

    const resumed = await runQlr(["run", "--backend", "fake", "--resume", interrupted, "--data-dir", sharedData,
      "--cache-dir", join(dir, "cache"), "--sample-count", "1", "--sample-tokens", "20", "--quiet"])
    expect(resumed.stderr).toBe("")
    expect(resumed.code).toBe(0)
    const whole = join(dir, "whole")
    expect((await runQlr(args(whole))).code).toBe(0)
    expect(withoutTiming(readJsonLines(eventsFile))).toEqual(withoutTiming(readJsonLines(join(whole, "events.jsonl"))))
  })
})
