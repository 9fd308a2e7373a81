/**
 * The LrPolicy service: the pure policy (state + `lrAt` + `onEval`) that the
 * training stream folds over. Layers in src/layers provide each controller.
 * @since 0.1.0
 */
import { Context } from "effect"
import type { AnyLrPolicy } from "../domain/Policy.js"

/**
 * The service tag: the training stream reads the policy it folds over from
 * here. Provide one with a {@link LrPolicies} layer, or your own with
 * `Layer.succeed(LrPolicy, policy)`.
 */
export class LrPolicy extends Context.Tag("qlr/LrPolicy")<LrPolicy, AnyLrPolicy>() {}
