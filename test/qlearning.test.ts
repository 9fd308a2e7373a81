import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { renderAgentReport } from "../src/domain/AgentReport.js"
import { QLearningSettings } from "../src/domain/Config.js"
import type { AgentDecision } from "../src/domain/Events.js"
import type { EvalObservation, LrPolicy, ScheduleSettings } from "../src/domain/Policy.js"
import {
  AgentState,
  bellmanUpdate,
  chooseAction,
  decodeAgentFile,
  DIVERGED_STATE,
  encodeAgentFile,
  greedyAction,
  initialAgentState,
  lrBin,
  qlearningPolicy,
  randomPolicy,
  stateKey,
  valBin,
  valBinCount,
  withLoadedTable
} from "../src/domain/QLearning.js"
import { deriveSeed } from "../src/domain/Rng.js"
import { warmupCosineLr } from "../src/domain/Schedules.js"

const schedule: ScheduleSettings = { learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 100, lr_decay_iters: 2000 }
const settings = (fields: Partial<QLearningSettings> = {}) => QLearningSettings.make({ kind: "qlearning", ...fields })
const observe = (iter: number, val: number): EvalObservation => ({ iter, train_loss: val, val_loss: val, lr: 0 })

/** Feed val losses at evaluations every 50 iterations from `start`; the decisions and every state. */
const runEvals = (policy: LrPolicy<AgentState>, vals: ReadonlyArray<number>, start = schedule.warmup_iters) => {
  let state = policy.initial
  const decisions: Array<AgentDecision> = []
  const states: Array<AgentState> = [state]
  vals.forEach((val, k) => {
    const outcome = policy.onEval(state, observe(start + 50 * k, val))
    state = outcome.state
    states.push(state)
    if (outcome.decision) decisions.push(outcome.decision)
  })
  return { decisions, states, final: state }
}

const finiteVal = fc.double({ min: 0, max: 10, noNaN: true })
const qValue = fc.double({ min: -10, max: 10, noNaN: true })
const unit = fc.double({ min: 0, max: 1, noNaN: true })

describe("Q-learning update", () => {
  it.prop(
    "equals the Bellman formula on random tables, rewards and parameters",
    { prev: fc.array(qValue, { minLength: 3, maxLength: 3 }), next: fc.array(qValue, { minLength: 3, maxLength: 3 }),
      action: fc.integer({ min: 0, max: 2 }), alpha: unit, gamma: unit, val: finiteVal, sameState: fc.boolean() },
    ({ prev, next, action, alpha, gamma, val, sameState }) => {
      const s = settings({ alpha, gamma, epsilon: 0 })
      const policy = qlearningPolicy(s, schedule, 1)
      const nextKey = stateKey(s.state, policy.initial.lr_bounds, val, schedule.learning_rate)
      const prevKey = sameState ? nextKey : "earlier state"
      const table = sameState ? { [nextKey]: prev } : { [prevKey]: prev, [nextKey]: next }
      const start: AgentState = { ...policy.initial, q_table: table, last_state: prevKey, last_action: action }
      const { state, decision } = policy.onEval(start, observe(200, val))
      const maxNext = Math.max(...(sameState ? prev : next))
      const expected = prev[action]! + alpha * (-val + gamma * maxNext - prev[action]!)
      const updated = state.q_table[prevKey]!
      expect(updated[action]).toBeCloseTo(expected, 10)
      updated.forEach((q, i) => i !== action && expect(q).toBe(prev[i]))
      expect(decision?.reward).toBe(-val)
      expect(decision?.q_values).toEqual(state.q_table[nextKey])
    }
  )

  it("bellmanUpdate is the textbook rule", () => {
    expect(bellmanUpdate(1, 2, 3, 0.1, 0.9)).toBeCloseTo(1 + 0.1 * (2 + 0.9 * 3 - 1), 12)
  })

  it("unseen states start at initial_q and the first decision has no reward and no update", () => {
    const policy = qlearningPolicy(settings({ initial_q: 0.5, epsilon: 0 }), schedule, 1)
    const { decisions, final } = runEvals(policy, [2])
    expect(decisions[0]!.reward).toBeNull()
    expect(decisions[0]!.q_values).toEqual([0.5, 0.5, 0.5])
    expect(Object.values(final.q_table)).toEqual([[0.5, 0.5, 0.5]])
  })
})

describe("action choice", () => {
  const tieRow = fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 6 })

  it.prop("greedy with tie-break first is the lowest index of the maximum", { row: tieRow, seed: fc.integer() }, ({ row, seed }) => {
    const [index] = greedyAction(row, "first", deriveSeed(seed, "t"))
    expect(index).toBe(row.indexOf(Math.max(...row)))
  })

  it.prop("greedy with tie-break random picks only among the tied maxima", { row: tieRow, seed: fc.integer() }, ({ row, seed }) => {
    const [index] = greedyAction(row, "random", deriveSeed(seed, "t"))
    expect(row[index]).toBe(Math.max(...row))
  })

  it("tie-break random reaches every tied action, and only those", () => {
    const row = [1, 3, 0, 3, 3]
    let rng = deriveSeed(7, "t")
    const picked = new Set<number>()
    for (let i = 0; i < 300; i++) {
      const [index, next] = greedyAction(row, "random", rng)
      picked.add(index)
      rng = next
    }
    expect([...picked].sort()).toEqual([1, 3, 4])
  })

  it("with epsilon 0 the agent acts greedily in its state, ties going to the first action", () => {
    const policy = qlearningPolicy(settings({ epsilon: 0 }), schedule, 3)
    const { decisions } = runEvals(policy, [2, 2, 2])
    // Fresh zero rows: every action ties, so the published agent's choice is the first (decrease).
    expect(decisions.map((d) => d.action_index)).toEqual([0, 0, 0])
    expect(decisions.every((d) => !d.random)).toBe(true)
  })

  it("explores at rate epsilon (2000 decisions, within 5 binomial sigmas)", () => {
    const n = 2000
    for (const epsilon of [0.1, 0.5]) {
      const policy = qlearningPolicy(settings({ epsilon }), schedule, 11)
      const { decisions } = runEvals(policy, Array.from({ length: n }, (_, k) => 2 + Math.sin(k)))
      const explored = decisions.filter((d) => d.random).length
      const sigma = Math.sqrt(n * epsilon * (1 - epsilon))
      expect(Math.abs(explored - n * epsilon)).toBeLessThan(5 * sigma)
      // Random actions are uniform over the three factors.
      const counts = [0, 1, 2].map((a) => decisions.filter((d) => d.random && d.action_index === a).length)
      counts.forEach((c) => expect(Math.abs(c - explored / 3)).toBeLessThan(5 * Math.sqrt((explored * 2) / 9)))
    }
  })

  it("chooseAction draws exploration from the generator it is given", () => {
    const a = chooseAction([0, 1, 2], 0.5, "first", deriveSeed(1, "x"))
    const b = chooseAction([0, 1, 2], 0.5, "first", deriveSeed(1, "x"))
    expect(a).toEqual(b)
    expect(a.rng).not.toBe(deriveSeed(1, "x"))
  })
})

describe("LR bounds and modes", () => {
  const valOrBroken = fc.oneof(finiteVal, fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY))

  it.prop(
    "after the warmup the LR stays within [min_lr, max_lr] in both modes",
    { vals: fc.array(valOrBroken, { minLength: 1, maxLength: 40 }), mode: fc.constantFrom("own" as const, "scale" as const),
      epsilon: unit, seed: fc.integer(), maxLr: fc.option(fc.double({ min: 2e-3, max: 1e-1, noNaN: true }), { nil: null }) },
    ({ vals, mode, epsilon, seed, maxLr }) => {
      const s = settings({ mode, epsilon, factors: [0.5, 1, 2], max_lr: maxLr })
      const hi = maxLr ?? 10 * schedule.learning_rate
      const policy = qlearningPolicy(s, schedule, seed)
      const { states } = runEvals(policy, vals)
      for (const state of states) {
        for (const iter of [100, 137, 999, 1999, 2000, 5000]) {
          const lr = policy.lrAt(state, iter)
          expect(lr).toBeGreaterThanOrEqual(schedule.min_lr)
          expect(lr).toBeLessThanOrEqual(hi * (1 + 1e-12))
        }
      }
    }
  )

  it("own mode: the first LR is the peak, then LR x factor", () => {
    const policy = qlearningPolicy(settings({ epsilon: 0, factors: [0.5, 2] }), schedule, 1)
    expect(policy.lrAt(policy.initial, 100)).toBe(1e-3)
    const { state } = policy.onEval(policy.initial, observe(100, 2))
    expect(policy.lrAt(state, 101)).toBe(5e-4)
    expect(policy.lrAt(state, 1500)).toBe(5e-4)
  })

  it("scale mode: LR = cosine x multiplier, the multiplier starting at 1 and clamped", () => {
    const policy = qlearningPolicy(settings({ epsilon: 0, mode: "scale", factors: [10, 1], max_lr: 5e-3 }), schedule, 1)
    for (const iter of [100, 500, 1500]) expect(policy.lrAt(policy.initial, iter)).toBe(warmupCosineLr(schedule, iter))
    const { state } = policy.onEval(policy.initial, observe(100, 2))
    expect(state.control).toEqual({ mode: "scale", multiplier: 10 })
    expect(policy.lrAt(state, 1500)).toBeCloseTo(warmupCosineLr(schedule, 1500) * 10, 15)
    expect(policy.lrAt(state, 150)).toBe(5e-3) // cosine x 10 exceeds max_lr
    // Repeated x10 stops at max_lr / min_lr, where the multiplier still matters at the cosine floor.
    const { final } = runEvals(policy, [2, 3, 4, 5, 6])
    expect(final.control).toEqual({ mode: "scale", multiplier: 5e-3 / 1e-4 })
    expect(policy.lrAt(final, 5000)).toBe(5e-3)
  })
})

describe("warmup", () => {
  it("follows the cosine warmup ramp and takes no decision before warmup_iters", () => {
    const policy = qlearningPolicy(settings(), schedule, 1)
    for (const iter of [0, 10, 99]) expect(policy.lrAt(policy.initial, iter)).toBe(warmupCosineLr(schedule, iter))
    const during = policy.onEval(policy.initial, observe(50, 3))
    expect(during.decision).toBeUndefined()
    expect(during.state).toBe(policy.initial)
    const after = policy.onEval(during.state, observe(100, 3))
    expect(after.decision).toBeDefined()
    expect(after.state.decisions).toBe(1)
  })

  it("with warmup off the agent acts from iteration 0 at the peak LR", () => {
    const policy = qlearningPolicy(settings({ warmup: false }), schedule, 1)
    expect(policy.lrAt(policy.initial, 0)).toBe(1e-3)
    expect(policy.onEval(policy.initial, observe(0, 4)).decision).toBeDefined()
  })
})

describe("rewards", () => {
  const vals = fc.array(finiteVal, { minLength: 2, maxLength: 20 })
  const rewardsOf = (reward: QLearningSettings["reward"], vs: ReadonlyArray<number>) =>
    runEvals(qlearningPolicy(settings({ reward }), schedule, 5), vs).decisions.map((d) => d.reward)

  it.prop("neg-val = -val", { vs: vals }, ({ vs }) => {
    expect(rewardsOf("neg-val", vs)).toEqual([null, ...vs.slice(1).map((v) => -v)])
  })

  it.prop("improvement = previous val - current", { vs: vals }, ({ vs }) => {
    expect(rewardsOf("improvement", vs)).toEqual([null, ...vs.slice(1).map((v, k) => vs[k]! - v)])
  })

  it.prop("best-improvement = best val so far - current", { vs: vals }, ({ vs }) => {
    expect(rewardsOf("best-improvement", vs)).toEqual([
      null,
      ...vs.slice(1).map((v, k) => Math.min(...vs.slice(0, k + 1)) - v)
    ])
  })

  it("a diverged val loss is the diverged state, rewarded with the penalty, and never poisons the table", () => {
    for (const reward of ["neg-val", "improvement", "best-improvement"] as const) {
      const policy = qlearningPolicy(settings({ reward, divergence_penalty: -7, epsilon: 0.3 }), schedule, 2)
      const { decisions, final } = runEvals(policy, [2, Number.NaN, Number.POSITIVE_INFINITY, 1.5, Number.NEGATIVE_INFINITY, 1.4])
      expect(decisions.map((d) => d.state).filter((s) => s === DIVERGED_STATE)).toHaveLength(3)
      expect(decisions[1]!.reward).toBe(-7)
      expect(decisions[2]!.reward).toBe(-7)
      expect(Object.values(final.q_table).flat().every(Number.isFinite)).toBe(true)
      expect(final.prev_val).toBe(1.4)
      // The agent file stays valid JSON with finite numbers.
      expect(Either.isRight(decodeAgentFile(encodeAgentFile(final)))).toBe(true)
    }
    // After a divergence, "improvement" compares with the last finite val loss.
    const policy = qlearningPolicy(settings({ reward: "improvement" }), schedule, 2)
    expect(runEvals(policy, [2, Number.NaN, 1.5]).decisions[2]!.reward).toBeCloseTo(0.5, 12)
  })
})

describe("epsilon decay", () => {
  const decayRun = (on: "random" | "decision") => {
    const s = settings({ epsilon: 0.8, epsilon_decay: 0.7, epsilon_min: 0.05, epsilon_decay_on: on })
    return runEvals(qlearningPolicy(s, schedule, 4), Array.from({ length: 300 }, () => 2)).decisions
  }

  it.each(["random", "decision"] as const)("decays after each %s action, floored at epsilon_min", (on) => {
    const decisions = decayRun(on)
    decisions.slice(1).forEach((d, k) => {
      const before = decisions[k]!
      const decays = on === "decision" || before.random
      expect(d.epsilon).toBeCloseTo(decays ? Math.max(0.05, before.epsilon * 0.7) : before.epsilon, 12)
    })
    expect(decisions.at(-1)!.epsilon).toBe(0.05)
  })

  it("decays nothing with the default epsilon_decay 1", () => {
    const { decisions } = runEvals(qlearningPolicy(settings({ epsilon: 0.5 }), schedule, 4), [2, 2, 2, 2, 2, 2])
    expect(decisions.every((d) => d.epsilon === 0.5)).toBe(true)
  })
})

describe("discretisation", () => {
  const bins = { kind: "bins" as const, val_bin_width: 0.25, val_max: 5, lr_bins: 8 }
  const bounds = { min_lr: 1e-4, max_lr: 1e-2 }

  it.prop(
    "bins never fall outside the table",
    { val: fc.double(), lr: fc.double({ min: 0, noNaN: true }) },
    ({ val, lr }) => {
      if (Number.isFinite(val)) {
        const v = valBin(bins, val)
        expect(v).toBeGreaterThanOrEqual(0)
        expect(v).toBeLessThanOrEqual(valBinCount(bins))
      }
      const l = lrBin(bins, bounds, lr)
      expect(l).toBeGreaterThanOrEqual(0)
      expect(l).toBeLessThan(bins.lr_bins)
    }
  )

  it("bins give a bounded set of readable keys", () => {
    const keys = new Set<string>()
    // One LR inside each of the 8 log-spaced bins, and two outside the bounds.
    const lrs = [1e-6, 1, ...Array.from({ length: 8 }, (_, j) => 1e-4 * Math.pow(100, (j + 0.5) / 8))]
    for (let v = -1; v < 12; v += 0.01) for (const lr of lrs) keys.add(stateKey(bins, bounds, v, lr))
    expect(keys.size).toBe((valBinCount(bins) + 1) * bins.lr_bins)
    expect(stateKey(bins, bounds, 1.3, 1e-4)).toBe("val[1.25,1.5) lr[0.000100,0.000178)")
    expect(stateKey(bins, bounds, 7, 1e-2)).toBe("val>=5 lr[0.00562,0.0100]")
    expect(stateKey(bins, bounds, Number.NaN, 1e-3)).toBe(DIVERGED_STATE)
  })

  it("rounding is the published key: val to 2 decimals, LR to 5", () => {
    const rounding = settings().state
    expect(stateKey(rounding, bounds, 1.4655, 9e-4)).toBe("val=1.47 lr=0.00090")
    expect(stateKey(rounding, bounds, Number.NEGATIVE_INFINITY, 9e-4)).toBe(DIVERGED_STATE)
  })
})

describe("determinism", () => {
  const trajectory = (seed: number) =>
    runEvals(qlearningPolicy(settings({ epsilon: 0.5, tie_break: "random" }), schedule, seed), Array.from({ length: 60 }, (_, k) => 3 - k / 40)).decisions

  it("the same seed gives the same trajectory; different seeds differ", () => {
    expect(trajectory(42)).toEqual(trajectory(42))
    expect(trajectory(42).map((d) => d.action_index)).not.toEqual(trajectory(43).map((d) => d.action_index))
  })

  it("the agent's generator is seeded from deriveSeed(seed, \"agent\")", () => {
    expect(qlearningPolicy(settings(), schedule, 9).initial.rng).toBe(deriveSeed(9, "agent"))
  })
})

describe("random policy", () => {
  it("acts uniformly at random with epsilon 1 and no decay, whatever the settings say", () => {
    const policy = randomPolicy(settings({ epsilon: 0.1, epsilon_decay: 0.5 }), schedule, 3)
    expect(policy.name).toBe("random")
    const { decisions } = runEvals(policy, Array.from({ length: 30 }, () => 2))
    expect(decisions.every((d) => d.random && d.epsilon === 1)).toBe(true)
  })
})

describe("agent files", () => {
  const trained = () =>
    runEvals(qlearningPolicy(settings({ epsilon: 0.4, epsilon_decay: 0.95 }), schedule, 8), [3, 2.5, 2.2, 2.1, 2.0, 1.95]).final

  it("round-trips through encode and decode", () => {
    const state = trained()
    const decoded = decodeAgentFile(encodeAgentFile(state))
    expect(decoded).toEqual(Either.right(state))
    expect(Schema.decodeUnknownSync(AgentState)(Schema.encodeSync(AgentState)(state))).toEqual(state)
  })

  it("a wrong version, shape or text is a clear StateFileError", () => {
    const json = JSON.parse(encodeAgentFile(trained())) as Record<string, unknown>
    const message = (text: string) => Either.match(decodeAgentFile(text, "agent.json"), { onLeft: (e) => e.message, onRight: () => "decoded" })
    expect(message(JSON.stringify({ ...json, version: 2 }))).toBe(
      "agent.json has version 2, but this qlr reads agent files of version 1"
    )
    expect(message(JSON.stringify({ q: {} }))).toContain('no "version" field')
    expect(message("{not json")).toContain("agent.json is not valid JSON")
    const key = Object.keys(json.q_table as object)[0]!
    expect(message(JSON.stringify({ ...json, q_table: { [key]: [1, 2] } }))).toContain(`Q-table row "${key}" has 2 values but the agent has 3 actions`)
    expect(message(JSON.stringify({ ...json, epsilon: "high" }))).toMatch(/wrong shape[\s\S]*epsilon/)
    const error = decodeAgentFile("[]")
    expect(Either.isLeft(error) && error.left._tag).toBe("StateFileError")
  })

  it("a loaded table carries Q-values and epsilon, and resets the per-run fields", () => {
    const saved = trained()
    const s = settings({ epsilon: 0.4, epsilon_decay: 0.95 })
    const loaded = Either.getOrThrow(withLoadedTable(s, schedule, 99, saved))
    expect(loaded.q_table).toEqual(saved.q_table)
    expect(loaded.epsilon).toBe(saved.epsilon)
    expect(loaded.decisions).toBe(saved.decisions)
    expect(loaded).toMatchObject({ last_state: null, last_action: null, prev_val: null, best_val: null })
    expect(loaded.control).toEqual({ mode: "own", lr: 1e-3 })
    expect(loaded.rng).toBe(deriveSeed(99, "agent"))
    // The first decision of the new run rewards nothing from the old run.
    const policy = { ...qlearningPolicy(s, schedule, 99), initial: loaded }
    expect(runEvals(policy, [2]).decisions[0]!.reward).toBeNull()
  })

  it("refuses a table built with other actions, states or LR bins", () => {
    const saved = trained()
    const refusal = (s: QLearningSettings, sched = schedule, table = saved) =>
      Either.match(withLoadedTable(s, sched, 1, table), { onLeft: (e) => e.message, onRight: () => "accepted" })
    expect(refusal(settings({ factors: [0.5, 1, 2] }))).toContain("built with actions [0.9, 1, 1.1] but this run uses [0.5, 1, 2]")
    expect(refusal(settings({ state: { kind: "rounding", val_decimals: 3, lr_decimals: 5 } }))).toContain(
      "val loss to 2 decimals, LR to 5) but this run uses rounding (val loss to 3 decimals"
    )
    const bins = settings({ state: { kind: "bins", val_bin_width: 0.25, val_max: 5, lr_bins: 8 } })
    const binned = initialAgentState(bins, schedule, 1)
    expect(refusal(bins, schedule, binned)).toBe("accepted")
    expect(refusal(bins, { ...schedule, min_lr: 5e-5 }, binned)).toContain("use the same --min-lr and --max-lr")
  })
})

describe("agent report", () => {
  it("lists every visited state with its best action, Q-values and a summary", () => {
    const state: AgentState = {
      ...initialAgentState(settings(), schedule, 1),
      q_table: { "val=2.00 lr=0.00100": [-1, -0.5, -2], [DIVERGED_STATE]: [-7, -7, -7], "val=10.00 lr=0.00100": [0, 0, -1] },
      visits: { "val=2.00 lr=0.00100": 3, [DIVERGED_STATE]: 1, "val=10.00 lr=0.00100": 2 },
      decisions: 6
    }
    const report = renderAgentReport(state)
    expect(report).toContain("decisions: 6")
    expect(report).toContain("states visited: 3")
    expect(report).toContain("epsilon: 0.1000")
    const lines = report.split("\n")
    const row = (key: string) => lines.find((l) => l.startsWith(key))!
    expect(row("val=2.00").split(/\s{2,}/)).toEqual(["val=2.00 lr=0.00100", "3", "x1", "-1.0000", "-0.5000", "-2.0000"])
    expect(row("val=10.00")).toContain("x0.9 (tied)")
    expect(row(DIVERGED_STATE)).toContain("x0.9 (all tied)")
    // Numeric order, the diverged state last.
    expect(lines.indexOf(row("val=2.00"))).toBeLessThan(lines.indexOf(row("val=10.00")))
    expect(lines.indexOf(row("val=10.00"))).toBeLessThan(lines.indexOf(row(DIVERGED_STATE)))
  })

  it("says when the table is empty", () => {
    expect(renderAgentReport(initialAgentState(settings(), schedule, 1))).toContain("The table is empty")
  })
})
