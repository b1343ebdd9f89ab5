// Point-in-polygon / rectangle selection over typed arrays of screen positions (x, y interleaved).

/** Ids of points (screen xy interleaved; NaN = hidden) inside the polygon (xy interleaved). */
export function pointsInPolygon(screen: Float32Array, poly: ArrayLike<number>, ids?: Uint32Array): Uint32Array {
  const m = poly.length / 2;
  if (m < 3) return new Uint32Array(0);
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  for (let j = 0; j < m; j++) {
    const x = poly[2 * j],
      y = poly[2 * j + 1];
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  const n = screen.length / 2;
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const px = screen[2 * i],
      py = screen[2 * i + 1];
    if (!(px >= x0 && px <= x1 && py >= y0 && py <= y1)) continue; // also rejects NaN
    let inside = false;
    for (let a = 0, b = m - 1; a < m; b = a++) {
      const ax = poly[2 * a],
        ay = poly[2 * a + 1],
        bx = poly[2 * b],
        by = poly[2 * b + 1];
      if (ay > py !== by > py && px < ((bx - ax) * (py - ay)) / (by - ay) + ax) inside = !inside;
    }
    if (inside) out[k++] = ids ? ids[i] : i;
  }
  return out.slice(0, k);
}

/** Ids of points inside the rectangle spanned by (ax, ay) and (bx, by). */
export function pointsInBox(
  screen: Float32Array,
  ax: number,
  ay: number,
  bx: number,
  by: number,
  ids?: Uint32Array,
): Uint32Array {
  const x0 = Math.min(ax, bx),
    x1 = Math.max(ax, bx),
    y0 = Math.min(ay, by),
    y1 = Math.max(ay, by);
  const n = screen.length / 2;
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const px = screen[2 * i],
      py = screen[2 * i + 1];
    if (px >= x0 && px <= x1 && py >= y0 && py <= y1) out[k++] = ids ? ids[i] : i;
  }
  return out.slice(0, k);
}

/** Index of the nearest point to (x, y) within `radius` px (ties: nearest the camera), or -1. */
export function nearest(screen: Float32Array, x: number, y: number, radius: number, depth?: Float32Array): number {
  let best = -1;
  let bestD = radius * radius;
  let bestZ = Infinity;
  const n = screen.length / 2;
  for (let i = 0; i < n; i++) {
    const dx = screen[2 * i] - x,
      dy = screen[2 * i + 1] - y;
    const d = dx * dx + dy * dy;
    if (!(d <= bestD + 1)) continue; // also rejects NaN
    const z = depth ? depth[i] : 0;
    if (d < bestD - 1 || z < bestZ) {
      best = i;
      bestD = Math.min(d, bestD);
      bestZ = z;
    }
  }
  return best;
}
