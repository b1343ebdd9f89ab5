import { describe, expect, it } from "vitest";
import { packPoints, unpackLean } from "../src/gl/pack";

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

describe("unpackLean (the first view, patternviz_widget/widget/rpc.py lean_points)", () => {
  // the same points in both layouts: 7 bytes (p int16 x,y,z + m uint8 class | glyph << 6) and 8
  const n = 500;
  const scale = 3.25;
  const p = new Int16Array(3 * n).map((_, i) => Math.round(Math.sin(i * 7.31) * 32767));
  const m = new Uint8Array(n);
  const q = new Int16Array(4 * n);
  for (let i = 0; i < n; i++) {
    const c = i % 64;
    const g = i % 17 === 0 ? 3 : i % 3; // every 17th point not finite, not drawn
    m[i] = c | (g << 6);
    q.set([p[3 * i], p[3 * i + 1], p[3 * i + 2], c | (g << 8)], 4 * i);
  }

  it("reads 7 bytes a point into the 8-byte GPU layout, class and glyph recovered", () => {
    expect(p.byteLength + m.byteLength).toBe(7 * n);
    const out = unpackLean({ p, m }, scale);
    expect(Array.from(out.q)).toEqual(Array.from(q));
    expect(out.maxClass).toBe(63);
    for (let i = 0; i < n; i++) {
      const hidden = i % 17 === 0;
      expect(out.label[i]).toBe(i % 64);
      expect(out.glyph[i]).toBe(hidden ? 0 : i % 3);
      for (let d = 0; d < 3; d++) {
        const v = out.xyz[3 * i + d];
        if (hidden) expect(v).toBeNaN();
        else expect(v).toBeCloseTo((p[3 * i + d] * scale) / 32767, 6);
      }
    }
  });

  it("gives what the 8-byte layout gives (more than 64 classes), which it uses as is", () => {
    const seven = unpackLean({ p, m }, scale);
    const eight = unpackLean({ q }, scale);
    expect(eight.q).toBe(q); // no copy: uploaded as sent
    expect(Array.from(eight.xyz)).toEqual(Array.from(seven.xyz));
    expect(Array.from(eight.label)).toEqual(Array.from(seven.label));
    expect(Array.from(eight.glyph)).toEqual(Array.from(seven.glyph));
    const wide = new Int16Array([1, 2, 3, 200 | (2 << 8)]);
    const w = unpackLean({ q: wide }, scale);
    expect(w.label[0]).toBe(200);
    expect(w.glyph[0]).toBe(2);
    expect(w.maxClass).toBe(200);
  });
});
