import { describe, expect, it } from "vitest";
import { Matrix4 } from "three";
import { makeCamera, project } from "../src/lib/camera";
import { packPoints } from "../src/gl/pack";
import {
  cachedLooks,
  isSoftwareRenderer,
  makeSplatBuffer,
  packRGBA,
  splatPane,
  type RGB,
  type SplatStyle,
} from "../src/gl/splat";

const W = 200,
  H = 120;
const cam = makeCamera({ azimuth: 0.7, elevation: 0.42, distance: 4.6, target: [0, 0, 0] }, W / H);
const mvp = new Matrix4().multiplyMatrices(cam.projectionMatrix, cam.matrixWorldInverse).elements;
const palette: RGB[] = [
  [1, 0, 0],
  [0, 0.5, 1],
  [0.2, 0.8, 0.2],
];
const style = (size: number, hover = -1): SplatStyle => ({
  mvp,
  size,
  bg: [1, 1, 1],
  outline: [0, 0, 0],
  accent: [0, 0.4, 1],
  hover,
});

function pointsOf(xyz: number[], cls: number[], glyph: number[], flag?: Uint8Array) {
  const f = new Float32Array(xyz);
  const { packed, scale } = packPoints(f, cls, glyph, palette.length);
  return {
    pts: { n: cls.length, q: packed, scale, palette, flag: flag ?? null, hasSelection: !!flag },
    xyz: new Float32Array(Array.from(packed).flatMap((v, i) => (i % 4 === 3 ? [] : [(v / 32767) * scale]))),
  };
}

/** Covered pixels of the buffer: bounding box (in top-down rows, as project()) and count. */
function covered(buf: ReturnType<typeof makeSplatBuffer>) {
  let x0 = Infinity,
    x1 = -Infinity,
    y0 = Infinity,
    y1 = -Infinity,
    count = 0;
  for (let y = 0; y < buf.h; y++)
    for (let x = 0; x < buf.w; x++)
      if (buf.color[y * buf.w + x] >>> 24) {
        const yt = buf.h - 1 - y;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, yt);
        y1 = Math.max(y1, yt);
        count++;
      }
  return { cx: (x0 + x1 + 1) / 2, cy: (y0 + y1 + 1) / 2, w: x1 - x0 + 1, h: y1 - y0 + 1, count };
}

describe("splatPane", () => {
  it("puts every point where camera.ts's project() puts it", () => {
    const buf = makeSplatBuffer(W, H);
    for (let t = 0; t < 50; t++) {
      const p = [Math.sin(t * 1.7) * 0.9, Math.cos(t * 2.3) * 0.7, Math.sin(t * 0.9 + 1) * 0.8];
      // a second point far away fixes the packing scale, drawn too but off to the side
      const { pts, xyz } = pointsOf([...p, 1, 1, 1], [0, 1], [1, 3]);
      expect(splatPane(buf, pts, style(4), 1)).toBe(1);
      const { xy } = project(xyz.subarray(0, 3), cam, W, H);
      const c = covered(buf);
      expect(c.count).toBe(16); // a 4-px flat square
      expect(Math.abs(c.cx - xy[0])).toBeLessThanOrEqual(0.5);
      expect(Math.abs(c.cy - xy[1])).toBeLessThanOrEqual(0.5);
    }
  });

  it("keeps the nearest point where points overlap, whatever their order", () => {
    const dir = cam.position.clone().normalize();
    const near = dir.clone().multiplyScalar(0.5).toArray();
    const far = dir.clone().multiplyScalar(-0.5).toArray();
    for (const order of [
      [near, far],
      [far, near],
    ]) {
      const cls = order[0] === near ? [0, 1] : [1, 0];
      const { pts } = pointsOf([...order[0], ...order[1]], cls, [1, 1]);
      const buf = makeSplatBuffer(W, H);
      splatPane(buf, pts, style(4), 1);
      const mid = Math.floor(H / 2) * W + Math.floor(W / 2);
      const hit = [...Array(9).keys()].map((k) => buf.color[mid + (k % 3) - 1 + (Math.floor(k / 3) - 1) * W]);
      expect(hit.filter((c) => c === packRGBA(palette[0])).length).toBeGreaterThan(0); // the near one, class 0
      expect(hit.filter((c) => c === packRGBA(palette[1])).length).toBe(0);
    }
  });

  it("draws the shaders' sizes: flat squares when small, glyph shapes with outlines when big", () => {
    const { pts } = pointsOf([0, 0, 0, 1, 1, 1], [0, 0], [1, 3]);
    const buf = makeSplatBuffer(W, H);
    splatPane(buf, pts, style(3), 1);
    expect(covered(buf).count).toBe(9);
    // glyph 0 (non-discriminative) is 0.78 of the size, faded towards the background
    const sq = pointsOf([0, 0, 0, 1, 1, 1], [0, 0], [0, 3]).pts;
    splatPane(buf, sq, style(40), 1);
    const s = covered(buf);
    expect(s.w).toBeGreaterThanOrEqual(Math.floor(40 * 0.78 * 0.8));
    expect(s.w).toBeLessThanOrEqual(Math.ceil(40 * 0.78 * 0.8) + 1);
    // circle (reliable): radius 0.94 of half the size, a darker rim
    splatPane(buf, pts, style(40), 1);
    const c = covered(buf);
    expect(Math.abs(c.count - Math.PI * (0.94 * 20) ** 2) / c.count).toBeLessThan(0.05);
    const colours = new Set(buf.color.filter((v) => v >>> 24));
    expect(colours).toEqual(new Set([packRGBA([1, 0, 0]), packRGBA([0.62, 0, 0])]));
    // hover: at least 12 CSS px, outlined in the foreground colour, over everything
    splatPane(buf, pts, style(3, 0), 2);
    expect(new Set(buf.color.filter((v) => v >>> 24)).has(packRGBA([0, 0, 0]))).toBe(true);
    const hw = covered(buf).w; // a circle of 24 device px (2 × max(3 / 2, 12) px), radius 0.94 of it
    expect(hw).toBeGreaterThanOrEqual(22);
    expect(hw).toBeLessThanOrEqual(23);
  });

  it("dims unselected points and rims the selected ones in the accent colour", () => {
    const { pts } = pointsOf([0, 0, 0, 0.6, 0, 0, 1, 1, 1], [0, 1, 0], [1, 1, 3], new Uint8Array([1, 0, 0]));
    const buf = makeSplatBuffer(W, H);
    splatPane(buf, pts, style(20), 1);
    const cols = new Set(buf.color.filter((v) => v >>> 24));
    expect(cols.has(packRGBA([0, 0.4, 1]))).toBe(true); // accent rim of the selected point
    expect(cols.has(packRGBA([1, 0, 0]))).toBe(true); // its own colour, not dimmed
    const dimmed: RGB = [0.8, 0.9, 1]; // class 1 mixed 0.8 towards the white background
    expect(cols.has(packRGBA(dimmed))).toBe(true);
    expect(cols.has(packRGBA([0, 0.5, 1]))).toBe(false);
  });
});

describe("cachedLooks", () => {
  it("keeps a pass's colour tables while nothing they depend on changes, and redraws the same frame", () => {
    const { pts } = pointsOf([0, 0, 0, 0.6, 0, 0, 1, 1, 1], [0, 1, 2], [1, 2, 0]);
    const buf = makeSplatBuffer(W, H);
    splatPane(buf, pts, style(10), 1);
    const first = Uint32Array.from(buf.color);
    const look = cachedLooks(buf, 0, pts, style(10), 1);
    const fill = Uint32Array.from(look.fill);
    splatPane(buf, pts, style(10), 1);
    expect(cachedLooks(buf, 0, pts, style(10), 1)).toBe(look); // the same arrays, not rebuilt
    expect(Array.from(buf.color)).toEqual(Array.from(first));
    // a new background colour (a theme change) rebuilds them: class 0's small squares mix towards it
    const dark = { ...style(10), bg: [0, 0, 0] as RGB };
    cachedLooks(buf, 0, pts, dark, 1);
    expect(look.fill[0]).toBe(packRGBA([0.58, 0, 0])); // (1, 0, 0) mixed 0.42 towards black
    expect(look.fill[0]).not.toBe(fill[0]);
    // a palette colour changed in place as well
    const red = pts.palette[0];
    pts.palette[0] = [0, 1, 0];
    cachedLooks(buf, 0, pts, dark, 1);
    expect(look.fill[1]).toBe(packRGBA([0, 1, 0])); // glyph 1 (reliable KP) keeps the class colour
    pts.palette[0] = red;
  });
});

describe("isSoftwareRenderer", () => {
  it("tells software WebGL from a GPU", () => {
    expect(
      isSoftwareRenderer(
        "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
      ),
    ).toBe(true);
    expect(isSoftwareRenderer("llvmpipe (LLVM 15.0.7, 256 bits)")).toBe(true);
    expect(isSoftwareRenderer("ANGLE (NVIDIA, NVIDIA GeForce RTX 3080 Direct3D11 vs_5_0 ps_5_0)")).toBe(false);
    expect(isSoftwareRenderer("Apple M2")).toBe(false);
  });
});
