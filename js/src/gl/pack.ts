// The GPU layout of a pane's points: 8 bytes a point (see shaders.ts).

/** Quantise xyz to int16 in [-32767, 32767] of the largest |coordinate|; pack class and glyph. */
export function packPoints(
  xyz: Float32Array,
  cidx: ArrayLike<number>,
  glyph: ArrayLike<number>,
  palLen: number,
): { packed: Int16Array; scale: number } {
  const n = glyph.length;
  let m = 0;
  for (let i = 0; i < 3 * n; i++) {
    const a = Math.abs(xyz[i]);
    if (a > m && a !== Infinity) m = a;
  }
  const scale = m > 0 ? m : 1;
  const k = 32767 / scale;
  const packed = new Int16Array(4 * n);
  for (let i = 0; i < n; i++) {
    const x = xyz[3 * i],
      y = xyz[3 * i + 1],
      z = xyz[3 * i + 2];
    const o = 4 * i;
    if (x - x !== 0 || y - y !== 0 || z - z !== 0) {
      packed[o + 3] = 3 << 8; // not finite: not drawn
      continue;
    }
    packed[o] = Math.round(x * k);
    packed[o + 1] = Math.round(y * k);
    packed[o + 2] = Math.round(z * k);
    const c = cidx[i];
    packed[o + 3] = (c < palLen ? c : c % palLen) | (Math.min(glyph[i], 3) << 8);
  }
  return { packed, scale };
}

/** The first view's drawing columns, decoded (see patternviz_widget/widget/rpc.py lean_points). */
export interface LeanPoints {
  xyz: Float32Array;
  label: Uint8Array;
  glyph: Uint8Array;
  /** the points in the 8-byte layout above, uploaded as is */
  q: Int16Array;
  maxClass: number;
}

/**
 * Decode the first view: either 7 bytes a point (`p` int16 x, y, z and `m` uint8 class | glyph << 6)
 * or 8 (`q` int16 x, y, z, class | glyph << 8, when a class is above 63); positions in units of
 * scale / 32767, glyph 3 = not finite, not drawn. The 7-byte layout is expanded to the 8-byte one
 * here, in the same pass that fills xyz, so the renderers read one layout.
 */
export function unpackLean(arrays: { p?: Int16Array; m?: Uint8Array; q?: Int16Array }, scale: number): LeanPoints {
  const k = scale / 32767;
  const { p, m } = arrays;
  const seven = p !== undefined && m !== undefined;
  const n = seven ? m.length : arrays.q!.length >> 2;
  const q = seven ? new Int16Array(4 * n) : arrays.q!;
  if (seven)
    for (let i = 0; i < n; i++) {
      const b = m[i];
      q[4 * i] = p[3 * i];
      q[4 * i + 1] = p[3 * i + 1];
      q[4 * i + 2] = p[3 * i + 2];
      q[4 * i + 3] = (b & 63) | ((b >> 6) << 8);
    }
  const xyz = new Float32Array(3 * n);
  const label = new Uint8Array(n);
  const glyph = new Uint8Array(n);
  let maxClass = 0;
  for (let i = 0; i < n; i++) {
    const w = q[4 * i + 3];
    const c = w & 255;
    const g = w >> 8;
    if (c > maxClass) maxClass = c;
    if (g > 2) xyz.fill(NaN, 3 * i, 3 * i + 3);
    else {
      xyz[3 * i] = q[4 * i] * k;
      xyz[3 * i + 1] = q[4 * i + 1] * k;
      xyz[3 * i + 2] = q[4 * i + 2] * k;
    }
    label[i] = c;
    glyph[i] = g > 2 ? 0 : g;
  }
  return { xyz, label, glyph, q, maxClass };
}
