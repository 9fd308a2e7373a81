/**
 * qlr as a library: every program in examples/ runs as a user would run it
 * (a child `node --import tsx`, importing the package by its name through the
 * exports map, so dist/ must be built) and prints what it is meant to show;
 * the exports map exposes the library and the CLI and nothing inside dist/;
 * importing the library does not load tfjs.
 */
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { repoRoot, sharedData } from "./support/cli.js"

const scratch = mkdtempSync(join(tmpdir(), "qlr-examples-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

interface Result {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Run node with `args` in the repository root; corpora come from ../shared/data, temp files and the dataset cache go to a scratch directory. */
const node = (args: ReadonlyArray<string>): Promise<Result> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      {
        cwd: repoRoot,
        env: { ...process.env, TMPDIR: scratch, QLR_DATA_DIR: sharedData, QLR_CACHE_DIR: join(scratch, "cache") },
        maxBuffer: 16 * 1024 * 1024
      },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })
    )
  })

const runExample = async (name: string): Promise<string> => {
  const result = await node(["--import", "tsx", join("examples", name)])
  // On failure, the message shows what the example said.
  expect(result.code, `${name} failed:\n${result.stderr}`).toBe(0)
  return result.stdout
}

describe("examples/", () => {
  it("quick-start.ts: the README's example trains a tiny GPT under the agent", async () => {
    const out = await runExample("quick-start.ts")
    expect(out).toMatch(/^iter 0: val loss 4\.\d{3}, next LR /m)
    expect(out).toMatch(/^iter 100: val loss \d\.\d{3}, next LR \d\.\d{2}e-\d+\n$/m)
  }, 240_000)

  it("custom-policy.ts: a reduce-on-plateau LrPolicy layer against the cosine baseline", async () => {
    const out = await runExample("custom-policy.ts")
    expect(out).toMatch(/^baseline \(cosine\): +final val loss \d+\.\d{4}; distinct LRs chosen at evaluations: /m)
    const plateau = out.match(/^reduce-on-plateau: +final val loss \d+\.\d{4}; distinct LRs chosen at evaluations: (.*)$/m)
    expect(plateau).not.toBeNull()
    // The policy held the peak, then lowered it at plateaus.
    expect(plateau![1]!.split(" ").length).toBeGreaterThan(1)
  })

  it("csv-sink.ts: a CSV MetricsSink swapped in under runTraining", async () => {
    const out = await runExample("csv-sink.ts")
    expect(out).toMatch(/^wrote 7 evaluations to .*metrics\.csv:$/m)
    expect(out).toContain("  iter,train_loss,val_loss,lr,next_lr,elapsed\n  0,")
    expect(out).toMatch(/^final_info: best val loss \d+\.\d{4}, final train loss \d+\.\d{4}$/m)
  })

  it("early-stopping.ts: Stream.takeUntil ends a real tiny model's training on a plateau", async () => {
    const out = await runExample("early-stopping.ts")
    expect(out).toMatch(/^shakespeare_char: 65 symbols/m)
    expect(out).toMatch(/no improvement \(2\/2\)\nearly stop at iteration \d+ of 1000: best val loss \d+\.\d{4}\n$/)
  }, 240_000)
})

describe("the package's entry points", () => {
  const probe = (code: string) => node(["--input-type=module", "-e", code])

  it("`qlr` is the library, and importing it does not load tfjs", async () => {
    const result = await probe(
      `const q = await import("qlr"); console.log(typeof q.train, typeof q.runTraining, typeof q.TfjsModel.layer, "_tfengine" in globalThis)`
    )
    expect(result.stdout.trim()).toBe("function function function false")
  })

  it("`qlr/cli` is the command line; modules inside dist/ are not reachable", async () => {
    const result = await probe(
      [
        `const cli = await import("qlr/cli"); console.log(typeof cli.cli)`,
        `try { await import("qlr/dist/layers/gpt.js") } catch (e) { console.log(e.code) }`,
        `try { await import("qlr/dist/index.js") } catch (e) { console.log(e.code) }`
      ].join("\n")
    )
    expect(result.stdout.trim().split("\n")).toEqual(["function", "ERR_PACKAGE_PATH_NOT_EXPORTED", "ERR_PACKAGE_PATH_NOT_EXPORTED"])
  })
})
