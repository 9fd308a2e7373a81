/**
 * The `qlr` executable: runs the CLI on the process arguments and turns any
 * failure into one readable line and exit code 1.
 * @since 0.1.0
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { createRequire } from "node:module"
import { cli } from "./cli.js"

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }

cli(version)(process.argv).pipe(
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
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
