/** The progress line's durations. */
import { describe, expect, it } from "@effect/vitest"
import { formatDuration } from "../src/programs/run.js"

describe("formatDuration", () => {
  it("rounds to the second before splitting into minutes and hours", () => {
    expect(formatDuration(0.4)).toBe("0s")
    expect(formatDuration(59.4)).toBe("59s")
    expect(formatDuration(59.6)).toBe("1m00s")
    expect(formatDuration(119.6)).toBe("2m00s")
    expect(formatDuration(125)).toBe("2m05s")
    expect(formatDuration(3599.7)).toBe("1h00m")
    expect(formatDuration(3 * 3600 + 5 * 60 + 10)).toBe("3h05m")
  })
})
