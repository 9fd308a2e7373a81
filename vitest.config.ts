import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Training tests are CPU-bound: running files one at a time keeps the
    // 2-core machine from being oversubscribed.
    fileParallelism: false
  }
})
