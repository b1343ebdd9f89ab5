// Forward construction (paper Sec. 3.3, spatial emergence): the regions of the chosen images from
// every captured layer in ONE frame, coloured by layer, with the path of their centroids.
import type { PointSet } from "../data";
import { classColor } from "../lib/colors";
import type { PaneSource } from "./embedding";

function subset(p: PointSet, rows: number[]): PointSet {
  const n = rows.length;
  const xyz = new Float32Array(3 * n);
  const glyph = new Uint8Array(n);
  const disc = new Float32Array(n);
  const pred = new Uint16Array(n);
  const label = new Uint16Array(n);
  const image = new Uint32Array(n);
  const ids = new Uint32Array(n);
  rows.forEach((r, i) => {
    xyz[3 * i] = p.xyz[3 * r];
    xyz[3 * i + 1] = p.xyz[3 * r + 1];
    xyz[3 * i + 2] = p.xyz[3 * r + 2];
    glyph[i] = p.glyph[r];
    disc[i] = p.discrimination[r];
    pred[i] = p.predicted[r];
    label[i] = p.label[r];
    image[i] = p.image[r];
    ids[i] = p.ids ? p.ids[r] : r;
  });
  return { ...p, n, xyz, glyph, discrimination: disc, predicted: pred, label, image, ids };
}

export function buildForward(
  all: PointSet[],
  images: number[],
  layerColors: string[],
  classNames: string[],
  classPalette: string[],
): PaneSource {
  const want = new Set(images);
  const sets = all.map((p) => {
    const rows: number[] = [];
    for (let i = 0; i < p.n; i++) if (want.has(p.image[i])) rows.push(i);
    return subset(p, rows);
  });
  const offsets: number[] = [];
  let total = 0;
  for (const s of sets) {
    offsets.push(total);
    total += s.n;
  }
  const xyz = new Float32Array(3 * total);
  const cidx = new Uint8Array(total);
  const glyph = new Uint8Array(total);
  const path: number[] = [];
  let radius = 0;
  sets.forEach((s, k) => {
    xyz.set(s.xyz, 3 * offsets[k]);
    cidx.fill(k, offsets[k], offsets[k] + s.n);
    glyph.set(s.glyph, offsets[k]);
    if (s.n) {
      const c = [0, 0, 0];
      for (let i = 0; i < s.n; i++) for (let d = 0; d < 3; d++) c[d] += s.xyz[3 * i + d] / s.n;
      path.push(c[0], c[1], c[2]);
    }
    radius = Math.max(radius, all[k].radius);
  });
  const mu = all.find((p) => p.mu)?.mu ?? null;
  const palette = layerColors.length ? layerColors : ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
  return {
    sets,
    offsets,
    data: {
      title: "",
      n: total,
      xyz,
      cidx,
      glyph,
      flag: new Uint8Array(total),
      flagVersion: 0,
      palette: sets.map(
        (_, k) =>
          palette[Math.min(palette.length - 1, Math.round((k / Math.max(sets.length - 1, 1)) * (palette.length - 1)))],
      ),
      mu,
      muLabels: classNames,
      muColors: classNames.map((_, c) => classColor(classPalette, c)),
      ellipsoids: null,
      path: path.length >= 6 ? new Float32Array(path) : null,
      radius: radius || 1,
      hasSelection: false,
    },
  };
}
