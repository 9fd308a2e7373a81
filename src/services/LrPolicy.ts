/**
 * The LrPolicy service: the pure policy (state + `lrAt` + `onEval`) that the
 * training stream folds over. Layers in src/layers provide each controller.
 * @since 0.1.0
 */
import { Context } from "effect"
import type { AnyLrPolicy } from "../domain/Policy.js"

export class LrPolicy extends Context.Tag("qlr/LrPolicy")<LrPolicy, AnyLrPolicy>() {}
