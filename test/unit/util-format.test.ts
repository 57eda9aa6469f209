import { describe, expect, it } from "vitest";
import { bytesSize, goFormatG, humanDuration, humanSize, humanSize4 } from "../../src/util/index.js";

describe("docker human formats", () => {
  it.each([
    [0, "0B"],
    [999, "999B"],
    [1000, "1kB"],
    [1234, "1.23kB"],
    [141_200_000, "141MB"],
    [1_012_345_678, "1.01GB"],
    [4_261_000, "4.26MB"],
    [5_000_000, "5MB"],
    [999_600, "1e+03kB"],
  ])("humanSize(%d) = %s", (n, want) => expect(humanSize(n)).toBe(want));
  it("humanSize4 and bytesSize", () => {
    expect(humanSize4(1_234_567)).toBe("1.235MB");
    expect(bytesSize(1536)).toBe("1.5KiB");
  });
  it("goFormatG", () => {
    expect(goFormatG(0.00001234, 3)).toBe("1.23e-05");
    expect(goFormatG(12.5, 3)).toBe("12.5");
  });
  it.each([
    [500, "Less than a second"],
    [1000, "1 second"],
    [59_000, "59 seconds"],
    [60_000, "About a minute"],
    [3_000_000, "50 minutes"],
    [3_600_000, "About an hour"],
    [5 * 3_600_000, "5 hours"],
    [3 * 86_400_000, "3 days"],
    [15 * 86_400_000, "2 weeks"],
    [90 * 86_400_000, "3 months"],
    [800 * 86_400_000, "2 years"],
  ])("humanDuration(%d) = %s", (ms, want) => expect(humanDuration(ms)).toBe(want));
});
