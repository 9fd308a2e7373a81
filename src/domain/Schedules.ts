/**
 * Learning-rate schedules as pure functions of the iteration.
 * @since 0.1.0
 */

/** The settings a warmup-cosine schedule reads. */
export interface CosineSettings {
  readonly learning_rate: number
  readonly min_lr: number
  readonly warmup_iters: number
  readonly lr_decay_iters: number
}

/**
 * Linear warmup from a small non-zero LR (peak/(warmup+1), as nanoGPT) to the
 * peak, cosine decay to `min_lr` at `lr_decay_iters`, `min_lr` after.
 */
export const warmupCosineLr = (s: CosineSettings, iter: number): number => {
  if (iter < s.warmup_iters) return (s.learning_rate * (iter + 1)) / (s.warmup_iters + 1)
  if (iter >= s.lr_decay_iters) return s.min_lr
  const ratio = (iter - s.warmup_iters) / Math.max(1, s.lr_decay_iters - s.warmup_iters)
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio))
  return s.min_lr + coeff * (s.learning_rate - s.min_lr)
}

/** True while the warmup ramp is in force. */
export const inWarmup = (s: CosineSettings, iter: number): boolean => iter < s.warmup_iters

/** Clamp an LR to [lo, hi]. */
export const clampLr = (lr: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, lr))
