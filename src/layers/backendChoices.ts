/**
 * The backend names `--backend` accepts, in a module that does not import
 * tfjs: the CLI and the sweep need the names, and loading tfjs takes seconds.
 * See ./tfjsBackend.ts for what each backend is.
 * @since 0.1.0
 */

export const BackendChoices = ["auto", "wasm", "wasm-blas", "cpu", "tensorflow"] as const
/** A backend `--backend` accepts; see ./tfjsBackend.ts for each. */
export type BackendChoice = (typeof BackendChoices)[number]

/** The message of a thrown value, whatever was thrown. */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))
