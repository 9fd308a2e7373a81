/**
 * The statistics the experiment reports rest on: mean and standard error
 * over seeds, Student's t distribution (CDF and quantile, in pure TS so the
 * numbers do not depend on a native library) and the paired t-test.
 * Every statistic that needs 2 values is `null` below 2, never NaN.
 * @since 0.1.0
 */

/** Below this many paired seeds the report says the t-test has little power. */
export const LITTLE_POWER_BELOW = 5

/** Arithmetic mean; null for no values. */
export const mean = (xs: ReadonlyArray<number>): number | null =>
  xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length

/** Sample standard deviation (divisor n - 1); null below 2 values. */
export const sampleStd = (xs: ReadonlyArray<number>): number | null => {
  const m = mean(xs)
  if (m === null || xs.length < 2) return null
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1))
}

/** Standard error of the mean: sample std / sqrt(n) (the published code divided by n); null below 2 values. */
export const standardError = (xs: ReadonlyArray<number>): number | null => {
  const s = sampleStd(xs)
  return s === null ? null : s / Math.sqrt(xs.length)
}

// Lanczos approximation (g = 7, 9 terms): about 15 significant digits for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7
]

/** ln Γ(x) for x > 0. */
export const logGamma = (x: number): number => {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x)
  const z = x - 1
  let sum = LANCZOS[0]!
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i)
  const t = z + 7.5
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum)
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
const betaContinuedFraction = (x: number, a: number, b: number): number => {
  const tiny = 1e-300
  let c = 1
  let d = 1 - ((a + b) * x) / (a + 1)
  if (Math.abs(d) < tiny) d = tiny
  d = 1 / d
  let h = d
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m
    const even = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2))
    d = 1 + even * d
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d
    c = 1 + even / c
    if (Math.abs(c) < tiny) c = tiny
    h *= d * c
    const odd = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1))
    d = 1 + odd * d
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d
    c = 1 + odd / c
    if (Math.abs(c) < tiny) c = tiny
    const delta = d * c
    h *= delta
    if (Math.abs(delta - 1) < 1e-16) break
  }
  return h
}

/** The regularized incomplete beta function I_x(a, b). */
export const regularizedIncompleteBeta = (x: number, a: number, b: number): number => {
  if (x <= 0) return 0
  if (x >= 1) return 1
  const logFront = a * Math.log(x) + b * Math.log1p(-x) - (logGamma(a) + logGamma(b) - logGamma(a + b))
  // The continued fraction converges fast only below the mean; use the symmetry above it.
  return x < (a + 1) / (a + b + 2)
    ? (Math.exp(logFront) * betaContinuedFraction(x, a, b)) / a
    : 1 - (Math.exp(logFront) * betaContinuedFraction(1 - x, b, a)) / b
}

/** P(T <= t) for Student's t with `df` degrees of freedom (df > 0, not necessarily whole). */
export const studentTCdf = (t: number, df: number): number => {
  if (Number.isNaN(t) || !(df > 0)) return Number.NaN
  const tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5)
  return t > 0 ? 1 - tail : tail
}

/** The t with P(T <= t) = p: bisection on the CDF, to double precision. */
export const studentTQuantile = (p: number, df: number): number => {
  if (!(p > 0 && p < 1) || !(df > 0)) return Number.NaN
  if (p === 0.5) return 0
  if (p < 0.5) return -studentTQuantile(1 - p, df)
  let lo = 0
  let hi = 1
  while (studentTCdf(hi, df) < p) {
    lo = hi
    hi *= 2
  }
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2
    if (mid === lo || mid === hi) break
    if (studentTCdf(mid, df) < p) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

/** A paired comparison of a treatment with a control on the same seeds; differences are treatment - control. */
export interface PairedComparison {
  readonly n: number
  /** n - 1; null below 2 pairs. */
  readonly df: number | null
  readonly mean_difference: number | null
  readonly stderr: number | null
  readonly ci95_low: number | null
  readonly ci95_high: number | null
  readonly t: number | null
  /** Two-sided p-value of the paired t-test. */
  readonly p_value: number | null
}

/** Paired t-test with a 95% t interval for the mean difference. */
export const pairedTTest = (treatment: ReadonlyArray<number>, control: ReadonlyArray<number>): PairedComparison => {
  if (treatment.length !== control.length)
    throw new RangeError(`pairedTTest: ${treatment.length} treatment values but ${control.length} control values`)
  const differences = treatment.map((x, i) => x - control[i]!)
  const n = differences.length
  const m = mean(differences)
  const se = standardError(differences)
  if (m === null || se === null)
    return { n, df: null, mean_difference: m, stderr: null, ci95_low: null, ci95_high: null, t: null, p_value: null }
  const df = n - 1
  const half = studentTQuantile(0.975, df) * se
  // Identical differences: the interval collapses and the test is certain (the limit of the formulas).
  const t = se === 0 ? null : m / se
  const p = t === null ? (m === 0 ? 1 : 0) : 2 * studentTCdf(-Math.abs(t), df)
  return { n, df, mean_difference: m, stderr: se, ci95_low: m - half, ci95_high: m + half, t, p_value: p }
}
