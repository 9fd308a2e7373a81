import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { beforeAll, describe, expect, it } from "vitest"
import { repoRoot, runQlr, sharedData, tempDir } from "./support/cli.js"

const SLOW = 240_000
const fixture = join(repoRoot, "test", "fixtures", "sweep-tiny.json")
const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => existsSync(path))
// Under CI the browser check must run (and fail loudly if chromium is missing); elsewhere it may be skipped.
const skipBrowser = chromium === undefined && process.env["CI"] === undefined

describe("qlr report", () => {
  const out = join(tempDir(), "sweep")
  const read = (name: string) => readFileSync(join(out, name), "utf8")
  // The fixture: shakespeare_char with 3 seeds and a text8 head with 1, three variants, the high-LR control diverging.
  const figureIds = ["d1-train-loss", "d1-val-loss", "d1-lr", "d2-train-loss", "d2-val-loss", "d2-lr"]

  beforeAll(async () => {
    const swept = await runQlr([
      "sweep", fixture, "--out", out, "--jobs", "2", "--backend", "fake", "--data-dir", sharedData, "--cache-dir", join(out, "..", "cache")
    ])
    expect(swept.code, swept.stderr).toBe(0)
    const reported = await runQlr(["report", out])
    expect(reported.code, reported.stderr).toBe(0)
  }, SLOW)

  it("writes report.md, report.html and every figure as an SVG file", () => {
    expect(existsSync(join(out, "report.md"))).toBe(true)
    expect(existsSync(join(out, "report.html"))).toBe(true)
    expect(readdirSync(join(out, "figures")).sort()).toEqual(figureIds.map((id) => `${id}.svg`).sort())
    for (const id of figureIds) {
      const svg = read(join("figures", `${id}.svg`))
      expect(svg.startsWith("<svg")).toBe(true)
      expect(svg).toMatch(/<path/)
      expect(read("report.md")).toContain(`(figures/${id}.svg)`)
    }
  })

  it("Table 1 and Table 2 compare with the baseline on paired seeds, honestly", () => {
    const md = read("report.md")
    expect(md).toMatch(/Table 1: baseline \(warmup-cosine\) vs Q-learning/)
    expect(md).toMatch(/Table 2: ablations and controls vs baseline/)
    const row = (dataset: string, variant: string) =>
      md.split("\n").find((line) => line.startsWith(`| ${dataset} | ${variant} |`) && line.includes("of"))!
    // 3 seeds: a t-test with df 2 and the little-power warning.
    expect(row("shakespeare_char", "qlearning")).toMatch(/3 of 3 .*\[[+−]\d\.\d{4}, [+−]\d\.\d{4}\] \| t = [-\d.]+, df 2, p [<=] [\d.]+ \| .*little power/)
    // 1 seed: statistics are n/a, never NaN.
    expect(row("file:../shared/data/text8/text8_head_689K", "qlearning")).toMatch(/± n\/a .*not testable/)
    // Diverged runs are counted and shown, not averaged.
    expect(row("shakespeare_char", "baseline-high-lr")).toMatch(/0 of 3 \(3 diverged\)/)
    expect(md).toMatch(/Diverged \(results, left out of the means\): shakespeare_char \/ baseline-high-lr \/ seed 1/)
    expect(md).toMatch(/Within noise \(95% CI of Δ includes 0\)/)
    expect(md).not.toMatch(/NaN/)
    const comparisons = JSON.parse(read("comparisons.json")) as Array<{ variant: string; dataset: string; best_val_loss: { df: number | null } }>
    expect(comparisons.find((c) => c.variant === "qlearning" && c.dataset === "shakespeare_char")!.best_val_loss.df).toBe(2)
  })

  it("states the setup as reduced from the paper, the backend and the shared-machine timings", () => {
    const md = read("report.md")
    expect(md).toMatch(/REDUCED from the paper: n_layer 2 \(paper 6\)/)
    expect(md).toMatch(/a file, not one of the paper's corpora/)
    expect(md).toMatch(/Backend: fake \(no GPU\) \(12 runs\)/)
    expect(md).toMatch(/12 runs shared the machine .*--jobs 2.*marked †/)
    expect(md).toMatch(/\| 0\.\d ± 0\.\d †/)
  })

  it("report.html is self-contained: figures inline, no external URL", () => {
    const html = read("report.html")
    expect(html.match(/<figure id="[^"]+">\s*<svg/g)).toHaveLength(figureIds.length)
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:)?\/\//i)
    expect(html).not.toMatch(/url\(\s*["']?https?:/i)
    expect(html).not.toMatch(/<script|<link|<img/i)
  })

  it.skipIf(skipBrowser)(
    `renders in headless Chromium: every table and figure has a size${skipBrowser ? " (skipped: no chromium and CI unset)" : ""}`,
    async () => {
      if (chromium === undefined) throw new Error("chromium is not installed (/usr/bin/chromium): apt-get install -y chromium")
      // A copy of the report with a script that measures what the browser laid out.
      const measure = `<script>
        const size = (el) => { const r = el.getBoundingClientRect(); return { w: r.width, h: r.height } };
        const result = {
          tables: [...document.querySelectorAll("table")].map((t) => ({ id: t.id, rows: t.rows.length, ...size(t) })),
          figures: [...document.querySelectorAll("figure")].map((f) => ({
            id: f.id,
            ...size(f.querySelector("svg")),
            marks: [...f.querySelectorAll("svg path")].filter((p) => { const b = p.getBoundingClientRect(); return b.width > 0 || b.height > 0 }).length
          }))
        };
        const pre = document.createElement("pre"); pre.id = "measured"; pre.textContent = JSON.stringify(result); document.body.appendChild(pre);
      </script>`
      const page = join(out, "measured-report.html")
      writeFileSync(page, read("report.html").replace("</body>", `${measure}</body>`))
      const dom = await new Promise<string>((resolve, reject) =>
        execFile(
          chromium,
          [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", `--user-data-dir=${mkdtempSync(join(tmpdir(), "qlr-chromium-"))}`,
            "--dump-dom", pathToFileURL(page).href
          ],
          { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
          (error, stdout, stderr) => (error ? reject(new Error(`chromium failed: ${error.message}\n${stderr}`)) : resolve(stdout))
        ))
      const json = /<pre id="measured">([^<]*)<\/pre>/.exec(dom)?.[1]
      expect(json, "the measuring script did not run").toBeDefined()
      const measured = JSON.parse(json!.replace(/&quot;/g, "\"").replace(/&amp;/g, "&")) as {
        tables: Array<{ id: string; rows: number; w: number; h: number }>
        figures: Array<{ id: string; w: number; h: number; marks: number }>
      }
      expect(measured.tables.map((t) => t.id)).toEqual(["setup", "table-1", "table-2", "runs"])
      for (const t of measured.tables) {
        expect(t.rows, t.id).toBeGreaterThan(1)
        expect(t.w * t.h, t.id).toBeGreaterThan(0)
      }
      expect(measured.figures.map((f) => f.id)).toEqual(figureIds)
      for (const f of measured.figures) {
        expect(f.w, f.id).toBeGreaterThan(100)
        expect(f.h, f.id).toBeGreaterThan(100)
        expect(f.marks, f.id).toBeGreaterThan(0)
      }
    },
    SLOW
  )

  it("warns when the runs of the sweep come from different code versions", async () => {
    const runDirs = readdirSync(join(out, "runs"))
    const setCommit = (dir: string, commit: string) => {
      const path = join(out, "runs", dir, "config.json")
      const config = JSON.parse(readFileSync(path, "utf8"))
      config.run.versions.git_commit = commit
      writeFileSync(path, JSON.stringify(config))
    }
    for (const dir of runDirs) setCommit(dir, "aaaaaaa")
    expect((await runQlr(["report", out])).code).toBe(0)
    expect(read("report.md")).not.toMatch(/different code versions/)
    setCommit(runDirs[0]!, "bbbbbbb")
    expect((await runQlr(["report", out])).code).toBe(0)
    expect(read("report.md")).toMatch(/Warning:\*\* The runs of this sweep come from 2 different code versions \(aaaaaaa, bbbbbbb\)|\(bbbbbbb, aaaaaaa\)/)
  }, SLOW)

  it("refuses a directory that is not a sweep", async () => {
    const result = await runQlr(["report", tempDir()])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/is not a sweep directory/)
  }, SLOW)
})
