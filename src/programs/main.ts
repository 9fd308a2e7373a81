/**
 * The `qlr` executable: runs the CLI on the process arguments and turns any
 * failure into one readable line and a non-zero exit code.
 *
 * It does not use NodeRuntime.runMain, whose SIGINT handler interrupts the
 * whole program at once: `qlr run` handles Ctrl-C itself, stopping at the
 * next step boundary with a checkpoint.
 * @since 0.1.0
 */
import { NodeContext } from "@effect/platform-node"
import { Cause, Console, Effect, Exit } from "effect"
import { createRequire } from "node:module"
import { cli } from "./cli.js"

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }

const program = cli(version)(process.argv).pipe(
  Effect.catchAll((error) =>
    Effect.zipRight(
      // @effect/cli prints its own validation errors with the usage; ours carry a message.
      "message" in error ? Console.error(`qlr: ${error.message}`) : Effect.void,
      Effect.sync(() => {
        // 130 is the shell's code for a run stopped by Ctrl-C.
        process.exitCode = "_tag" in error && error._tag === "InterruptedError" ? 130 : 1
      })
    )
  ),
  Effect.provide(NodeContext.layer)
)

Effect.runPromiseExit(program).then((exit) => {
  if (Exit.isFailure(exit)) {
    process.stderr.write(`qlr: unexpected failure\n${Cause.pretty(exit.cause)}\n`)
    process.exitCode = 1
  }
})
