/**
 * The learned Q-table in words, for `qlr inspect-agent FILE`: a summary,
 * then per visited state its visits, best action and Q-values.
 * @since 0.1.0
 */
import { type AgentState, DIVERGED_STATE, describeDiscretisation } from "./QLearning.js"

const factorLabel = (f: number): string => `x${f}`

const qLabel = (q: number): string => q.toFixed(4)

/** The best action of a row by lowest index among the maxima, marked when others tie with it. */
const bestLabel = (factors: ReadonlyArray<number>, row: ReadonlyArray<number>): string => {
  const best = Math.max(...row)
  const tied = row.flatMap((q, i) => (q === best ? [i] : []))
  const label = factorLabel(factors[tied[0]!]!)
  return tied.length === row.length ? `${label} (all tied)` : tied.length > 1 ? `${label} (tied)` : label
}

const numbersOf = (key: string): ReadonlyArray<number> => (key.match(/\d+(?:\.\d+)?(?:e[-+]?\d+)?/g) ?? []).map(Number)

/** States in reading order: by the numbers in their keys (val loss, then LR), the diverged state last. */
const byStateOrder = (a: string, b: string): number => {
  if (a === DIVERGED_STATE || b === DIVERGED_STATE) return a === b ? 0 : a === DIVERGED_STATE ? 1 : -1
  const [x, y] = [numbersOf(a), numbersOf(b)]
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return x.length - y.length
}

const columns = (cells: ReadonlyArray<string>, widths: ReadonlyArray<number>): string =>
  cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()

/** Render an agent state as a readable report (pure). */
export const renderAgentReport = (state: AgentState): string => {
  const keys = Object.keys(state.q_table).sort(byStateOrder)
  const control =
    state.control.mode === "own"
      ? `agent's LR ${state.control.lr.toPrecision(3)}`
      : `multiplier of the cosine schedule ${state.control.multiplier.toPrecision(3)}`
  const summary = [
    `qlr agent (file version ${state.version})`,
    `actions: ${state.factors.map(factorLabel).join(", ")}`,
    `states: ${describeDiscretisation(state.discretisation)}`,
    `LR bounds: [${state.lr_bounds.min_lr}, ${state.lr_bounds.max_lr}]`,
    `decisions: ${state.decisions}`,
    `states visited: ${keys.length}`,
    `epsilon: ${state.epsilon.toFixed(4)}`,
    `control at save: ${control}`
  ]
  if (keys.length === 0) return [...summary, "", "The table is empty: the agent has taken no decision yet."].join("\n") + "\n"

  const header = ["state", "visits", "best", ...state.factors.map((f) => `Q(${factorLabel(f)})`)]
  const rows = keys.map((key) => {
    const row = state.q_table[key]!
    return [key, String(state.visits[key] ?? 0), bestLabel(state.factors, row), ...row.map(qLabel)]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  return [
    ...summary,
    "",
    "best = the greedy action (lowest index among equal Q-values)",
    columns(header, widths),
    ...rows.map((r) => columns(r, widths))
  ].join("\n") + "\n"
}
