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
