import { describe, expect, it } from "vitest"
import {
  logGamma,
  mean,
  pairedTTest,
  sampleStd,
  standardError,
  studentTCdf,
  studentTQuantile
} from "../src/domain/Stats.js"

// Reference values: standard t tables, to the digits scipy.stats.t gives.
const quantiles975: ReadonlyArray<readonly [number, number]> = [
  [1, 12.706204736174694],
  [2, 4.302652729749462],
  [3, 3.1824463052837078],
  [4, 2.7764451051977934],
  [5, 2.5705818356363146],
  [10, 2.228138851986274],
  [30, 2.0422724563012378],
  [100, 1.9839715185235518]
]
const quantiles95: ReadonlyArray<readonly [number, number]> = [
  [1, 6.313751514675037],
  [2, 2.9199855803537242],
  [5, 2.0150483733330233],
  [30, 1.697260886593957]
]

describe("Student t distribution", () => {
  for (const [df, q] of quantiles975)
    it(`t(0.975, ${df}) = ${q.toFixed(4)}`, () => expect(studentTQuantile(0.975, df)).toBeCloseTo(q, 9))
  for (const [df, q] of quantiles95)
    it(`t(0.95, ${df}) = ${q.toFixed(4)}`, () => expect(studentTQuantile(0.95, df)).toBeCloseTo(q, 9))

  it("is symmetric and exact at the tails of the table", () => {
    expect(studentTQuantile(0.025, 3)).toBeCloseTo(-3.1824463052837078, 9)
    expect(studentTQuantile(0.995, 2)).toBeCloseTo(9.924843200918287, 8)
    expect(studentTQuantile(0.6, 7)).toBeCloseTo(0.2631668613520229, 9)
    expect(studentTQuantile(0.5, 4)).toBe(0)
  })

  it("CDF matches known values, whole and fractional df", () => {
    expect(studentTCdf(2, 5)).toBeCloseTo(0.9490302605850708, 10)
    expect(studentTCdf(-1.5, 12)).toBeCloseTo(0.07972875175660343, 10)
    expect(studentTCdf(0.5, 1)).toBeCloseTo(0.6475836176504333, 10) // Cauchy: 1/2 + atan(0.5)/pi
    expect(studentTCdf(3.3, 2.5)).toBeCloseTo(0.9702989356102779, 10)
    expect(studentTCdf(0, 3)).toBe(0.5)
    expect(studentTCdf(Infinity, 3)).toBe(1)
  })

  it("quantile inverts the CDF", () => {
    for (const p of [0.01, 0.2, 0.9, 0.999]) expect(studentTCdf(studentTQuantile(p, 6), 6)).toBeCloseTo(p, 12)
  })

  it("log-gamma matches factorials", () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12)
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12)
  })
})

describe("summary statistics", () => {
  it("standard error is the sample std (n - 1) over sqrt(n)", () => {
    const xs = [2, 4, 4, 4, 5, 5, 7, 9]
    expect(mean(xs)).toBe(5)
    expect(sampleStd(xs)).toBeCloseTo(Math.sqrt(32 / 7), 12)
    expect(standardError(xs)).toBeCloseTo(Math.sqrt(32 / 7) / Math.sqrt(8), 12)
  })

  it("fewer than 2 values give null, never NaN", () => {
    expect(mean([])).toBeNull()
    expect(mean([1.5])).toBe(1.5)
    expect(sampleStd([1.5])).toBeNull()
    expect(standardError([1.5])).toBeNull()
    expect(standardError([])).toBeNull()
  })
})

describe("paired t-test", () => {
  // scipy.stats.ttest_rel(treatment, control): t = -4.7434, p = 0.009014, df 4, CI (-0.04756, -0.01244).
  const control = [1.5, 1.47, 1.52, 1.49, 1.51]
  const treatment = [1.46, 1.45, 1.5, 1.44, 1.49]

  it("matches a known paired test", () => {
    const r = pairedTTest(treatment, control)
    expect(r.n).toBe(5)
    expect(r.df).toBe(4)
    expect(r.mean_difference).toBeCloseTo(-0.03, 12)
    expect(r.stderr).toBeCloseTo(0.006324555320336764, 12)
    expect(r.t).toBeCloseTo(-4.743416490252569, 9)
    expect(r.p_value).toBeCloseTo(0.009014481333908936, 9)
    expect(r.ci95_low).toBeCloseTo(-0.047559780661701696, 9)
    expect(r.ci95_high).toBeCloseTo(-0.012440219338298357, 9)
  })

  it("one pair gives the difference but no test", () => {
    const r = pairedTTest([1.2], [1.3])
    expect(r.mean_difference).toBeCloseTo(-0.1, 12)
    for (const key of ["df", "stderr", "ci95_low", "ci95_high", "t", "p_value"] as const) expect(r[key]).toBeNull()
  })

  it("identical differences collapse the interval without NaN", () => {
    const r = pairedTTest([2, 3, 4], [1, 2, 3])
    expect(r).toMatchObject({ mean_difference: 1, stderr: 0, ci95_low: 1, ci95_high: 1, t: null, p_value: 0, df: 2 })
  })
})
