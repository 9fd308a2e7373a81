/**
 * The presets of SPEC §6: `tiny` for tests, `cpu` (nanoGPT's CPU setting, the
 * same for every dataset) and `paper` (SPEC §1-2 exactly, per dataset).
 * @since 0.1.0
 */
import type { TrainConfig } from "./Config.js"

/** The presets by name: `tiny` (tests), `cpu` (nanoGPT's CPU setting) and `paper` (SPEC §1-2). */
export const PresetNames = ["tiny", "cpu", "paper"] as const
/** One of {@link PresetNames}. */
export type PresetName = (typeof PresetNames)[number]

/** The fields a preset fixes; everything but dataset, encoding, seed, policy and divergence handling. */
export type PresetFields = Omit<
  TrainConfig,
  "preset" | "dataset" | "encoding" | "seed" | "policy" | "on_divergence" | "max_rollbacks" | "rollback_lr_factor"
>

const optimizer = { weight_decay: 0.1, beta1: 0.9, beta2: 0.99, grad_clip: 1.0, eval_split: "val" as const }

const tiny: PresetFields = {
  ...optimizer,
  n_layer: 2, n_head: 2, n_embd: 64, block_size: 64, dropout: 0,
  batch_size: 16, micro_batch_size: 16,
  max_iters: 300, eval_interval: 50, eval_iters: 10,
  learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 30, lr_decay_iters: 300
}

const cpu: PresetFields = {
  ...optimizer,
  n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, dropout: 0,
  batch_size: 12, micro_batch_size: 12,
  max_iters: 2000, eval_interval: 250, eval_iters: 20,
  learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 100, lr_decay_iters: 2000
}

/** SPEC §2: shakespeare_char has its own settings; enwik8, text8 and other files share theirs. */
const paper = (dataset: string): PresetFields => {
  const shape = { n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, dropout: 0.2 }
  return dataset === "shakespeare_char"
    ? {
        ...optimizer, ...shape,
        batch_size: 64, micro_batch_size: 64,
        max_iters: 5000, eval_interval: 250, eval_iters: 200,
        learning_rate: 1e-3, min_lr: 1e-4, warmup_iters: 100, lr_decay_iters: 5000
      }
    : {
        ...optimizer, ...shape,
        batch_size: 32, micro_batch_size: 32,
        max_iters: 100000, eval_interval: 1000, eval_iters: 200,
        learning_rate: 5e-4, min_lr: 5e-5, warmup_iters: 200, lr_decay_iters: 100000
      }
}

/** The preset's fields for a dataset. */
export const presetFields = (preset: PresetName, dataset: string): PresetFields =>
  preset === "tiny" ? tiny : preset === "cpu" ? cpu : paper(dataset)

/** The paper's "Initial LR" ablation peak: twice the preset's peak (SPEC §2, §6). */
export const initialLrAblation = (learningRate: number): number => 2 * learningRate
