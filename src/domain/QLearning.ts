/**
 * The tabular Q-learning LR controller of SPEC §3 and §6, as a pure
 * {@link LrPolicy}: no I/O, no tensors, and every random draw from the
 * agent's own generator carried in its state.
 *
 * At each evaluation after the warmup the agent
 * 1. discretises (val loss, current LR) into a state key,
 * 2. rewards the action it chose at the previous evaluation and applies the
 *    Bellman update Q(s,a) <- Q(s,a) + alpha [r + gamma max_a' Q(s',a') - Q(s,a)],
 * 3. picks an action epsilon-greedily (ties by `tie_break`), multiplies its LR
 *    (mode `own`) or its multiplier of the cosine schedule (mode `scale`) by
 *    the action's factor and clamps it,
 * 4. decays epsilon.
 *
 * Choices this module makes (and reports):
 * - The first decision of a run has no previous action: no update, reward
 *   `null`. For the same reason the first evaluation's "improvement" and
 *   "best-improvement" rewards are defined as 0 (the published code used 1e9
 *   as the first best, a huge reward for nothing); they never feed an update.
 * - A NaN or infinite val loss maps to the state {@link DIVERGED_STATE} and
 *   the reward `divergence_penalty`; it never becomes the previous or best
 *   val loss, so no NaN can reach the table.
 * - The state's LR is the LR in force at the evaluation (`own`: the agent's
 *   LR; `scale`: cosine x multiplier), so a table means the same in both modes.
 * - Scale mode: the multiplier stays within [min_lr / peak, max_lr / min_lr],
 *   the range in which it still moves the LR at some point of the cosine
 *   curve, and every LR (cosine x multiplier) is clamped to [min_lr, max_lr].
 * - Every visited state gets a row (initialised to `initial_q`), so the table
 *   lists what the agent saw, not only what it updated.
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { QLearningSettings, StateDiscretisation } from "./Config.js"
import { StateFileError } from "./Errors.js"
import { AgentDecision } from "./Events.js"
import type { EvalObservation, EvalOutcome, LrPolicy, ScheduleSettings } from "./Policy.js"
import { deriveSeed, nextFloat, nextInt, RngState } from "./Rng.js"
import { clampLr, inWarmup, warmupCosineLr } from "./Schedules.js"

/** The version of the agent state and of agent files; bumped when the shape changes. */
export const AGENT_FILE_VERSION = 1

/** The state key of a NaN or infinite validation loss. */
export const DIVERGED_STATE = "diverged"

const FiniteNumber = Schema.Number.pipe(Schema.finite())
const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

/** The LR range the agent clamps to. */
export const LrBounds = Schema.Struct({ min_lr: FiniteNumber, max_lr: FiniteNumber })
export type LrBounds = typeof LrBounds.Type

/** What the agent controls: the LR itself (`own`) or a multiplier of the cosine schedule (`scale`). */
export const AgentControl = Schema.Union(
  Schema.Struct({ mode: Schema.Literal("own"), lr: FiniteNumber }),
  Schema.Struct({ mode: Schema.Literal("scale"), multiplier: FiniteNumber })
)
export type AgentControl = typeof AgentControl.Type

/** Q-values per state key, in factor order. */
export const QTable = Schema.Record({ key: Schema.String, value: Schema.Array(FiniteNumber) })
export type QTable = typeof QTable.Type

/** The agent's whole state: a plain JSON-encodable value (checkpoints and agent files). */
export const AgentState = Schema.Struct({
  version: Schema.Literal(AGENT_FILE_VERSION),
  /** The action list and discretisation the table was built with: a table of another shape is refused. */
  factors: Schema.NonEmptyArray(FiniteNumber),
  discretisation: StateDiscretisation,
  lr_bounds: LrBounds,
  q_table: QTable,
  /** How many decisions were taken in each state. */
  visits: Schema.Record({ key: Schema.String, value: NonNegativeInt }),
  epsilon: Schema.Number.pipe(Schema.between(0, 1)),
  /** The state and action of the previous decision: what the next reward is for. */
  last_state: Schema.NullOr(Schema.String),
  last_action: Schema.NullOr(NonNegativeInt),
  /** The last and the best finite val loss seen at a decision. */
  prev_val: Schema.NullOr(FiniteNumber),
  best_val: Schema.NullOr(FiniteNumber),
  control: AgentControl,
  rng: RngState,
  /** Decisions taken with this table, over every run it was carried through. */
  decisions: NonNegativeInt
}).pipe(
  Schema.filter((s) => {
    const actions = s.factors.length
    for (const [key, row] of Object.entries(s.q_table)) {
      if (row.length !== actions)
        return `Q-table row "${key}" has ${row.length} values but the agent has ${actions} actions (${s.factors.join(", ")})`
    }
    if (s.last_action !== null && s.last_action >= actions)
      return `last_action ${s.last_action} is not an index of the ${actions} actions`
    return true
  })
)
export type AgentState = typeof AgentState.Type

// ---------------------------------------------------------------------------
// Discretisation

/** The LR bounds of a run: [min_lr, max_lr], max_lr defaulting to 10 x the peak LR. */
export const lrBoundsOf = (settings: QLearningSettings, schedule: ScheduleSettings): LrBounds => ({
  min_lr: schedule.min_lr,
  max_lr: settings.max_lr ?? 10 * schedule.learning_rate
})

type Bins = Extract<StateDiscretisation, { kind: "bins" }>

/** Number of regular val-loss bins; index `valBinCount` is the overflow bin (val >= val_max). */
export const valBinCount = (d: Bins): number => Math.ceil(d.val_max / d.val_bin_width - 1e-9)

/** The val-loss bin of a finite val loss, in [0, valBinCount(d)]; negative losses fall in bin 0. */
export const valBin = (d: Bins, val: number): number =>
  Math.min(valBinCount(d), Math.floor(Math.max(0, val) / d.val_bin_width))

/** The log-spaced LR bin of an LR, in [0, lr_bins - 1]; LRs outside the bounds fall in the end bins. */
export const lrBin = (d: Bins, bounds: LrBounds, lr: number): number => {
  const span = Math.log(bounds.max_lr / bounds.min_lr)
  if (!(span > 0) || !(lr > 0)) return 0
  const position = Math.floor((d.lr_bins * Math.log(lr / bounds.min_lr)) / span)
  return Math.min(d.lr_bins - 1, Math.max(0, position))
}

/** A number short enough for a key, without float noise (0.30000000000000004 -> 0.3). */
const tidy = (x: number): string => String(Number(x.toPrecision(10)))

const lrEdge = (d: Bins, bounds: LrBounds, i: number): number =>
  bounds.min_lr * Math.pow(bounds.max_lr / bounds.min_lr, i / d.lr_bins)

const binsKey = (d: Bins, bounds: LrBounds, val: number, lr: number): string => {
  const v = valBin(d, val)
  const valPart =
    v === valBinCount(d)
      ? `val>=${tidy(d.val_max)}`
      : `val[${tidy(v * d.val_bin_width)},${tidy(Math.min(d.val_max, (v + 1) * d.val_bin_width))})`
  const l = lrBin(d, bounds, lr)
  const close = l === d.lr_bins - 1 ? "]" : ")"
  const lrPart = `lr[${lrEdge(d, bounds, l).toPrecision(3)},${lrEdge(d, bounds, l + 1).toPrecision(3)}${close}`
  return `${valPart} ${lrPart}`
}

// toFixed throws beyond 100 digits; no discretisation needs more.
const fixed = (x: number, decimals: number): string => x.toFixed(Math.min(100, decimals))

/** The readable state key of (val loss, LR); a NaN or infinite val loss is {@link DIVERGED_STATE}. */
export const stateKey = (d: StateDiscretisation, bounds: LrBounds, val: number, lr: number): string => {
  if (!Number.isFinite(val)) return DIVERGED_STATE
  switch (d.kind) {
    case "rounding":
      return `val=${fixed(val, d.val_decimals)} lr=${fixed(lr, d.lr_decimals)}`
    case "bins":
      return binsKey(d, bounds, val, lr)
  }
}

/** The discretisation in words, for messages and reports. */
export const describeDiscretisation = (d: StateDiscretisation): string =>
  d.kind === "rounding"
    ? `rounding (val loss to ${d.val_decimals} decimals, LR to ${d.lr_decimals})`
    : `bins (val loss in steps of ${d.val_bin_width} up to ${d.val_max} plus an overflow bin, ${d.lr_bins} log-spaced LR bins)`

const sameDiscretisation = (a: StateDiscretisation, b: StateDiscretisation): boolean => {
  if (a.kind === "rounding" && b.kind === "rounding")
    return a.val_decimals === b.val_decimals && a.lr_decimals === b.lr_decimals
  if (a.kind === "bins" && b.kind === "bins")
    return a.val_bin_width === b.val_bin_width && a.val_max === b.val_max && a.lr_bins === b.lr_bins
  return false
}

// ---------------------------------------------------------------------------
// The learning rule

/** The reward observed at an evaluation with val loss `val` (see the module comment for the first evaluation). */
export const rewardFor = (
  settings: Pick<QLearningSettings, "reward" | "divergence_penalty">,
  val: number,
  prevVal: number | null,
  bestVal: number | null
): number => {
  if (!Number.isFinite(val)) return settings.divergence_penalty
  switch (settings.reward) {
    case "neg-val":
      return -val
    case "improvement":
      return prevVal === null ? 0 : prevVal - val
    case "best-improvement":
      return bestVal === null ? 0 : bestVal - val
  }
}

/** One Bellman update of a Q-value. */
export const bellmanUpdate = (q: number, reward: number, maxNext: number, alpha: number, gamma: number): number =>
  q + alpha * (reward + gamma * maxNext - q)

/** The greedy action of a row: the argmax, ties by lowest index (`first`) or uniformly among the tied (`random`). */
export const greedyAction = (
  row: ReadonlyArray<number>,
  tieBreak: QLearningSettings["tie_break"],
  rng: RngState
): readonly [number, RngState] => {
  const best = Math.max(...row)
  const tied = row.flatMap((q, i) => (q === best ? [i] : []))
  if (tieBreak === "first" || tied.length === 1) return [tied[0]!, rng]
  const [pick, next] = nextInt(rng, tied.length)
  return [tied[pick]!, next]
}

/** An epsilon-greedy choice: one uniform draw decides exploration, then the action. */
export const chooseAction = (
  row: ReadonlyArray<number>,
  epsilon: number,
  tieBreak: QLearningSettings["tie_break"],
  rng: RngState
): { readonly index: number; readonly random: boolean; readonly rng: RngState } => {
  const [u, afterExplore] = nextFloat(rng)
  if (u < epsilon) {
    const [index, next] = nextInt(afterExplore, row.length)
    return { index, random: true, rng: next }
  }
  const [index, next] = greedyAction(row, tieBreak, afterExplore)
  return { index, random: false, rng: next }
}

/** Epsilon after a decision: x epsilon_decay (floored at epsilon_min) after a random action or after every decision. */
export const decayEpsilon = (
  settings: Pick<QLearningSettings, "epsilon_decay" | "epsilon_decay_on" | "epsilon_min">,
  epsilon: number,
  random: boolean
): number =>
  settings.epsilon_decay_on === "decision" || random
    ? Math.max(settings.epsilon_min, epsilon * settings.epsilon_decay)
    : epsilon

// ---------------------------------------------------------------------------
// The policy

/** Everything the policy derives once from its settings. */
interface AgentContext {
  readonly settings: QLearningSettings
  readonly schedule: ScheduleSettings
  readonly bounds: LrBounds
  readonly multiplierBounds: readonly [number, number]
}

const contextOf = (settings: QLearningSettings, schedule: ScheduleSettings): AgentContext => {
  const bounds = lrBoundsOf(settings, schedule)
  return {
    settings,
    schedule,
    bounds,
    multiplierBounds: [bounds.min_lr / schedule.learning_rate, bounds.max_lr / bounds.min_lr]
  }
}

const initialControl = (ctx: AgentContext): AgentControl =>
  ctx.settings.mode === "own"
    ? { mode: "own", lr: clampLr(ctx.schedule.learning_rate, ctx.bounds.min_lr, ctx.bounds.max_lr) }
    : { mode: "scale", multiplier: 1 }

/** The LR the agent sets at `iter`, warmup aside. */
const controlledLr = (ctx: AgentContext, control: AgentControl, iter: number): number =>
  control.mode === "own"
    ? control.lr
    : clampLr(warmupCosineLr(ctx.schedule, iter) * control.multiplier, ctx.bounds.min_lr, ctx.bounds.max_lr)

const applyFactor = (ctx: AgentContext, control: AgentControl, factor: number): AgentControl =>
  control.mode === "own"
    ? { mode: "own", lr: clampLr(control.lr * factor, ctx.bounds.min_lr, ctx.bounds.max_lr) }
    : { mode: "scale", multiplier: clampLr(control.multiplier * factor, ...ctx.multiplierBounds) }

const inAgentWarmup = (ctx: AgentContext, iter: number): boolean =>
  ctx.settings.warmup && inWarmup(ctx.schedule, iter)

/** The state a fresh agent starts a run with. */
export const initialAgentState = (
  settings: QLearningSettings,
  schedule: ScheduleSettings,
  seed: number
): AgentState => {
  const ctx = contextOf(settings, schedule)
  return {
    version: AGENT_FILE_VERSION,
    factors: settings.factors,
    discretisation: settings.state,
    lr_bounds: ctx.bounds,
    q_table: {},
    visits: {},
    epsilon: settings.epsilon,
    last_state: null,
    last_action: null,
    prev_val: null,
    best_val: null,
    control: initialControl(ctx),
    rng: deriveSeed(seed, "agent"),
    decisions: 0
  }
}

const decide = (ctx: AgentContext, state: AgentState, obs: EvalObservation): EvalOutcome<AgentState> => {
  const { settings } = ctx
  const val = obs.val_loss
  const key = stateKey(state.discretisation, state.lr_bounds, val, controlledLr(ctx, state.control, obs.iter))
  const freshRow = () => settings.factors.map(() => settings.initial_q)
  const seen: QTable = Object.hasOwn(state.q_table, key) ? state.q_table : { ...state.q_table, [key]: freshRow() }

  // The reward at this evaluation is for the action chosen at the previous one.
  const previous =
    state.last_state === null || state.last_action === null
      ? null
      : { key: state.last_state, action: state.last_action }
  const reward = previous === null ? null : rewardFor(settings, val, state.prev_val, state.best_val)
  const maxNext = Math.max(...seen[key]!)
  const table: QTable =
    previous === null || reward === null
      ? seen
      : {
          ...seen,
          [previous.key]: (seen[previous.key] ?? freshRow()).map((q, i) =>
            i === previous.action ? bellmanUpdate(q, reward, maxNext, settings.alpha, settings.gamma) : q
          )
        }

  const row = table[key]!
  const choice = chooseAction(row, state.epsilon, settings.tie_break, state.rng)
  const factor = settings.factors[choice.index]!
  const finite = Number.isFinite(val)
  const next: AgentState = {
    ...state,
    q_table: table,
    visits: { ...state.visits, [key]: (state.visits[key] ?? 0) + 1 },
    epsilon: decayEpsilon(settings, state.epsilon, choice.random),
    last_state: key,
    last_action: choice.index,
    prev_val: finite ? val : state.prev_val,
    best_val: finite ? Math.min(state.best_val ?? val, val) : state.best_val,
    control: applyFactor(ctx, state.control, factor),
    rng: choice.rng,
    decisions: state.decisions + 1
  }
  const decision = new AgentDecision({
    state: key,
    action_index: choice.index,
    action: factor,
    reward,
    epsilon: state.epsilon,
    q_values: row,
    random: choice.random
  })
  return { state: next, decision }
}

const agentPolicy = (
  name: string,
  settings: QLearningSettings,
  schedule: ScheduleSettings,
  seed: number
): LrPolicy<AgentState> => {
  const ctx = contextOf(settings, schedule)
  return {
    name,
    initial: initialAgentState(settings, schedule, seed),
    stateSchema: AgentState,
    lrAt: (state, iter) =>
      inAgentWarmup(ctx, iter) ? warmupCosineLr(schedule, iter) : controlledLr(ctx, state.control, iter),
    // Evaluations during the warmup leave the agent untouched: it starts acting after it.
    onEval: (state, obs) => (inAgentWarmup(ctx, obs.iter) ? { state } : decide(ctx, state, obs))
  }
}

/**
 * The Q-learning controller. Its state starts fresh; to start from a saved
 * table, replace `initial` with {@link withLoadedTable}'s result.
 */
export const qlearningPolicy = (
  settings: QLearningSettings,
  schedule: ScheduleSettings,
  seed: number
): LrPolicy<AgentState> => agentPolicy("qlearning", settings, schedule, seed)

/** The agent without learning: epsilon 1 and no decay, so every action is uniformly random. */
export const randomPolicy = (
  settings: QLearningSettings,
  schedule: ScheduleSettings,
  seed: number
): LrPolicy<AgentState> =>
  agentPolicy("random", QLearningSettings.make({ ...settings, epsilon: 1, epsilon_decay: 1 }), schedule, seed)

// ---------------------------------------------------------------------------
// Agent files and transfer across runs

/** The agent state as the JSON text of an agent file. */
export const encodeAgentFile = (state: AgentState): string =>
  JSON.stringify(Schema.encodeSync(AgentState)(state), null, 2) + "\n"

/** Read an agent file's text; any problem is a StateFileError naming it (`source` names the file). */
export const decodeAgentFile = (text: string, source = "the agent file"): Either.Either<AgentState, StateFileError> => {
  const fail = (problem: string) => Either.left(new StateFileError({ message: `${source} ${problem}` }))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return fail(`is not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (typeof json !== "object" || json === null || !("version" in json))
    return fail(`is not a qlr agent file: it has no "version" field`)
  if (json.version !== AGENT_FILE_VERSION)
    return fail(`has version ${JSON.stringify(json.version)}, but this qlr reads agent files of version ${AGENT_FILE_VERSION}`)
  return Schema.decodeUnknownEither(AgentState)(json).pipe(
    Either.mapLeft(
      (e) =>
        new StateFileError({
          message: `${source} has the wrong shape:\n${ParseResult.TreeFormatter.formatErrorSync(e)}`
        })
    )
  )
}

/**
 * The start state of a run that continues a saved table (transfer across
 * runs and seeds). Carried: the Q-table, visit counts, the decision count and
 * epsilon (so a decaying epsilon keeps decaying across runs instead of
 * restarting). Reset: the previous state/action (no reward crosses runs),
 * previous and best val loss, the LR (to the peak) or multiplier (to 1), and
 * the generator (from the new run's seed). A table built with other factors,
 * another discretisation or, for bins, other LR bounds is refused.
 */
export const withLoadedTable = (
  settings: QLearningSettings,
  schedule: ScheduleSettings,
  seed: number,
  loaded: AgentState
): Either.Either<AgentState, StateFileError> => {
  const fresh = initialAgentState(settings, schedule, seed)
  const refuse = (problem: string) =>
    Either.left(new StateFileError({ message: `the saved agent table cannot be used for this run: ${problem}` }))
  const sameFactors =
    loaded.factors.length === fresh.factors.length && loaded.factors.every((f, i) => f === fresh.factors[i])
  if (!sameFactors)
    return refuse(`it was built with actions [${loaded.factors.join(", ")}] but this run uses [${fresh.factors.join(", ")}]`)
  if (!sameDiscretisation(loaded.discretisation, fresh.discretisation))
    return refuse(
      `its states are ${describeDiscretisation(loaded.discretisation)} but this run uses ${describeDiscretisation(fresh.discretisation)}`
    )
  const sameBounds =
    loaded.lr_bounds.min_lr === fresh.lr_bounds.min_lr && loaded.lr_bounds.max_lr === fresh.lr_bounds.max_lr
  if (fresh.discretisation.kind === "bins" && !sameBounds)
    return refuse(
      `its LR bins span [${loaded.lr_bounds.min_lr}, ${loaded.lr_bounds.max_lr}] but this run's span ` +
        `[${fresh.lr_bounds.min_lr}, ${fresh.lr_bounds.max_lr}]; use the same --min-lr and --max-lr`
    )
  return Either.right({
    ...fresh,
    q_table: loaded.q_table,
    visits: loaded.visits,
    epsilon: loaded.epsilon,
    decisions: loaded.decisions
  })
}
