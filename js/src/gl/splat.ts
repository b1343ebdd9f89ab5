// The CPU point path of the WebGL renderer: the three point passes of shaders.ts (all points, the
// selected ones, the hovered one) splatted in JS into a colour + depth buffer of one pane, which the
// WebGL renderer then uploads as two textures and draws as one full-screen quad (writing the depth,
// so the μ arrows, axes and ellipsoids depth-test against the points as before). Used where the
// WebGL renderer is software (SwiftShader, llvmpipe): there one draw call of 10^6 points costs about
// 1 s a frame, this loop about 0.1 s (benchmarks/results/RESULTS.md, display).
//
// It reproduces the shaders: the same projection (camera.ts's `project`, in window pixels), the
// same point squares (pixel centres within gl_PointSize / 2 of the point's centre, the centre
// inside the clip volume), the same sizes and colours per pass and glyph, the glyph shapes and
// their outlines where points are big enough (the fragment shader's signed distances on
// gl_PointCoord), and the same depth test (pass 0: less, writes depth; pass 1: less-or-equal, no
// write; pass 2: none). Rows are bottom-up, as GL textures are.
import { GLYPH_MIN_DEVICE_PX } from "./shaders";

export type RGB = [number, number, number];

/** One pane's CPU frame buffer in device pixels: RGBA8 (alpha 0 = no point) and window depth. */
export interface SplatBuffer {
  w: number;
  h: number;
  color: Uint32Array;
  depth: Float32Array;
  /** the three passes' colour/size tables, rebuilt only when what they depend on changes */
  looks: (LookEntry | null)[];
}

export function makeSplatBuffer(w: number, h: number, old?: SplatBuffer | null): SplatBuffer {
  if (old && old.w === w && old.h === h) return old;
  return { w, h, color: new Uint32Array(w * h), depth: new Float32Array(w * h), looks: [null, null, null] };
}

export interface SplatPoints {
  n: number;
  /** 4 int16 a point: x, y, z normalised to `scale`, palette index | glyph << 8 (pack.ts) */
  q: Int16Array;
  scale: number;
  palette: RGB[];
  /** bit 0: selected (drawn in pass 1 when `hasSelection`) */
  flag: Uint8Array | null;
  hasSelection: boolean;
}

export interface SplatStyle {
  /** column-major projection × view matrix (three's `elements`) */
  mvp: ArrayLike<number>;
  /** point size in device px (the shaders' uSize × uPixelRatio) */
  size: number;
  bg: RGB;
  outline: RGB;
  accent: RGB;
  /** the hovered point, or -1 */
  hover: number;
}

const mixc = (a: RGB, b: RGB, t: number): RGB => [
  a[0] + (b[0] - a[0]) * t,
  a[1] + (b[1] - a[1]) * t,
  a[2] + (b[2] - a[2]) * t,
];
const scalec = (a: RGB, k: number): RGB => [a[0] * k, a[1] * k, a[2] * k];
const u8 = (v: number) => Math.round(Math.min(Math.max(v, 0), 1) * 255);
/** RGBA8 as one little-endian uint32 (opaque) */
export const packRGBA = (c: RGB): number => ((255 << 24) | (u8(c[2]) << 16) | (u8(c[1]) << 8) | u8(c[0])) >>> 0;

/** Signed distance of the glyph at point coordinate (px, py) in [-1, 1]² (y up), as pointFragment. */
export function glyphDistance(glyph: number, px: number, py: number): number {
  if (glyph === 0) return Math.max(Math.abs(px), Math.abs(py)) - 0.8;
  if (glyph === 1) return Math.sqrt(px * px + py * py) - 0.94;
  const qy = py + 0.2;
  return Math.max(0.866 * Math.abs(px) + 0.5 * qy, -qy) - 0.5;
}

/** Per (pass, palette index, glyph): fill colour, edge colour, edge threshold and size (device px). */
interface Look {
  fill: Uint32Array;
  edge: Uint32Array;
  edgeAt: Float32Array;
  size: Float32Array;
}

/** A pass's tables and the inputs they were built from (compared by value each frame). */
interface LookEntry {
  look: Look;
  /** palette flattened, then bg, outline, accent, size, dpr, hasSelection */
  inputs: Float64Array;
  /** this frame's inputs, written before the comparison (swapped with `inputs` on a rebuild) */
  next: Float64Array;
}

const inputCount = (pts: SplatPoints) => 3 * Math.max(pts.palette.length, 1) + 12;

function putRGB(v: Float64Array, i: number, c: ArrayLike<number> | undefined): void {
  v[i] = c ? c[0] : -1;
  v[i + 1] = c ? c[1] : -1;
  v[i + 2] = c ? c[2] : -1;
}

function writeInputs(v: Float64Array, pts: SplatPoints, st: SplatStyle, dpr: number): void {
  const P = Math.max(pts.palette.length, 1);
  for (let k = 0; k < P; k++) putRGB(v, 3 * k, pts.palette[k]);
  putRGB(v, 3 * P, st.bg);
  putRGB(v, 3 * P + 3, st.outline);
  putRGB(v, 3 * P + 6, st.accent);
  v[3 * P + 9] = st.size;
  v[3 * P + 10] = dpr;
  v[3 * P + 11] = pts.hasSelection ? 1 : 0;
}

/** The pass's tables from `buf`'s cache, rebuilt (into the same arrays while the palette keeps its
 * length) only when the palette, theme colours, point size, pixel ratio or selection changed: a
 * frame that changes none of them allocates nothing here. */
export function cachedLooks(buf: SplatBuffer, pass: number, pts: SplatPoints, st: SplatStyle, dpr: number): Look {
  const n = inputCount(pts);
  let e = buf.looks[pass];
  if (!e || e.inputs.length !== n) {
    const m = 3 * Math.max(pts.palette.length, 1);
    e = {
      look: {
        fill: new Uint32Array(m),
        edge: new Uint32Array(m),
        edgeAt: new Float32Array(m),
        size: new Float32Array(m),
      },
      inputs: new Float64Array(n).fill(NaN), // never equal: built below
      next: new Float64Array(n),
    };
    buf.looks[pass] = e;
  }
  writeInputs(e.next, pts, st, dpr);
  let same = true;
  for (let i = 0; i < n && same; i++) same = e.next[i] === e.inputs[i];
  if (same) return e.look;
  const t = e.inputs;
  e.inputs = e.next;
  e.next = t;
  return looks(pass, pts, st, dpr, e.look);
}

function looks(pass: number, pts: SplatPoints, st: SplatStyle, dpr: number, L: Look): Look {
  const P = Math.max(pts.palette.length, 1);
  for (let k = 0; k < P; k++)
    for (let g = 0; g < 3; g++) {
      let c: RGB = pts.palette[k] ?? [0.53, 0.53, 0.53];
      let size = st.size / dpr; // uSize, CSS px
      if (g === 0) {
        c = mixc(c, st.bg, 0.42);
        size *= 0.78;
      } else if (g === 2) size *= 1.18;
      if (pass === 0 && pts.hasSelection) {
        c = mixc(c, st.bg, 0.8);
        size *= 0.8;
      } else if (pass === 1) size *= 1.3;
      else if (pass === 2) size = Math.max(size * 2, 12);
      let edge = c,
        at = 1; // no edge
      if (pass === 2) {
        edge = st.outline;
        at = -0.26;
      } else if (pass === 1) {
        edge = st.accent;
        at = -0.3;
      } else if (g === 2) {
        edge = scalec(c, 0.45);
        at = -0.16;
      } else if (g === 1) {
        edge = scalec(c, 0.62);
        at = -0.14;
      }
      const j = 3 * k + g;
      L.fill[j] = packRGBA(c);
      L.edge[j] = packRGBA(edge);
      L.edgeAt[j] = at;
      L.size[j] = size * dpr; // gl_PointSize
    }
  return L;
}

/**
 * Splat the three point passes into `buf` (cleared first); `st.size` is uSize × uPixelRatio and
 * `dpr` the pixel ratio (the hover pass's minimum of 12 is in CSS px). Returns the number of points
 * whose centre lay inside the clip volume in pass 0.
 */
export function splatPane(buf: SplatBuffer, pts: SplatPoints, st: SplatStyle, dpr: number): number {
  buf.color.fill(0);
  buf.depth.fill(1);
  const flat = st.size < GLYPH_MIN_DEVICE_PX;
  const n = Math.min(pts.n, pts.q.length >> 2);
  let drawn = 0;
  const l0 = cachedLooks(buf, 0, pts, st, dpr);
  for (let i = 0; i < n; i++) drawn += splatOne(buf, pts, st, l0, i, 0, flat);
  if (pts.hasSelection && pts.flag) {
    const l1 = cachedLooks(buf, 1, pts, st, dpr);
    const f = pts.flag;
    const m = Math.min(n, f.length);
    for (let i = 0; i < m; i++) if (f[i] & 1) splatOne(buf, pts, st, l1, i, 1, flat);
  }
  if (st.hover >= 0 && st.hover < n) splatOne(buf, pts, st, cachedLooks(buf, 2, pts, st, dpr), st.hover, 2, false);
  return drawn;
}

/** One point of one pass; 1 when its centre is inside the clip volume. */
function splatOne(
  buf: SplatBuffer,
  pts: SplatPoints,
  st: SplatStyle,
  look: Look,
  i: number,
  pass: number,
  flat: boolean,
): number {
  const q = pts.q;
  const o = 4 * i;
  const meta = q[o + 3];
  const g = meta >> 8;
  if (g > 2 || g < 0) return 0;
  const k = pts.scale / 32767;
  const x = Math.max(q[o], -32767) * k,
    y = Math.max(q[o + 1], -32767) * k,
    z = Math.max(q[o + 2], -32767) * k;
  const m = st.mvp;
  const cw = m[3] * x + m[7] * y + m[11] * z + m[15];
  const cx = m[0] * x + m[4] * y + m[8] * z + m[12];
  const cy = m[1] * x + m[5] * y + m[9] * z + m[13];
  const cz = m[2] * x + m[6] * y + m[10] * z + m[14];
  if (!(cw > 0) || cx < -cw || cx > cw || cy < -cw || cy > cw || cz < -cw || cz > cw) return 0;
  const W = buf.w,
    H = buf.h;
  const xw = (cx / cw + 1) * 0.5 * W,
    yw = (cy / cw + 1) * 0.5 * H,
    d = Math.fround((cz / cw) * 0.5 + 0.5);
  const pi = meta & 255;
  const j = 3 * (pi < look.fill.length / 3 ? pi : pi % (look.fill.length / 3)) + g;
  const s = look.size[j],
    hs = s / 2;
  let x0 = Math.ceil(xw - hs - 0.5),
    x1 = Math.ceil(xw + hs - 0.5),
    y0 = Math.ceil(yw - hs - 0.5),
    y1 = Math.ceil(yw + hs - 0.5);
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > W) x1 = W;
  if (y1 > H) y1 = H;
  const color = buf.color,
    depth = buf.depth;
  const fill = look.fill[j];
  if (flat) {
    for (let yy = y0; yy < y1; yy++) {
      const r = yy * W;
      for (let xx = x0; xx < x1; xx++) {
        const p = r + xx;
        if (pass === 0) {
          if (d < depth[p]) {
            depth[p] = d;
            color[p] = fill;
          }
        } else if (pass === 2 || d <= depth[p]) color[p] = fill;
      }
    }
    return 1;
  }
  const edge = look.edge[j],
    at = look.edgeAt[j],
    k2 = 2 / s;
  for (let yy = y0; yy < y1; yy++) {
    const r = yy * W;
    const py = (yy + 0.5 - yw) * k2;
    for (let xx = x0; xx < x1; xx++) {
      const dist = glyphDistance(g, (xx + 0.5 - xw) * k2, py);
      if (dist > 0) continue;
      const c = dist >= at ? edge : fill;
      const p = r + xx;
      if (pass === 0) {
        if (d < depth[p]) {
          depth[p] = d;
          color[p] = c;
        }
      } else if (pass === 2 || d <= depth[p]) color[p] = c;
    }
  }
  return 1;
}

/** The renderer string says the WebGL implementation is software (no GPU behind it). */
export function isSoftwareRenderer(name: string): boolean {
  return /swiftshader|llvmpipe|softpipe|software|lavapipe/i.test(name);
}
