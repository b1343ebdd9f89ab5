import { describe, expect, it } from "vitest";
import { packPoints } from "../src/gl/pack";

describe("packPoints", () => {
  it("keeps positions to 1/32767 of the largest coordinate and packs class + glyph", () => {
    const n = 1000;
    const xyz = new Float32Array(3 * n);
    for (let i = 0; i < 3 * n; i++) xyz[i] = Math.sin(i * 12.9898) * 7.5;
    const cidx = new Uint8Array(n).map((_, i) => i % 10);
    const glyph = new Uint8Array(n).map((_, i) => i % 3);
    const { packed, scale } = packPoints(xyz, cidx, glyph, 10);
    expect(packed.length).toBe(4 * n); // 8 bytes a point
    expect(packed.byteLength / n).toBe(8);
    let worst = 0;
    for (let i = 0; i < n; i++)
      for (let d = 0; d < 3; d++)
        worst = Math.max(worst, Math.abs((packed[4 * i + d] / 32767) * scale - xyz[3 * i + d]));
    expect(worst).toBeLessThanOrEqual(scale / 32767);
    for (let i = 0; i < n; i++) {
      expect(packed[4 * i + 3] & 255).toBe(i % 10);
      expect(packed[4 * i + 3] >> 8).toBe(i % 3);
    }
  });

  it("marks non-finite points as not drawn and folds large palette indices", () => {
    const xyz = new Float32Array([1, 2, 3, NaN, 0, 0, 0, Infinity, 0]);
    const { packed, scale } = packPoints(xyz, new Uint16Array([300, 1, 2]), new Uint8Array([1, 1, 1]), 24);
    expect(scale).toBe(3);
    expect(packed[3] & 255).toBe(300 % 24);
    expect(packed[7] >> 8).toBe(3);
    expect(packed[11] >> 8).toBe(3);
  });
});
