// Colours: hex -> rgb, palettes from the catalog (patternviz_widget/_style.py).
export type RGB = [number, number, number];

export function hexToRgb(hex: string): RGB {
  const h = hex.replace("#", "");
  const v =
    h.length === 3
      ? h
          .split("")
          .map((c) => c + c)
          .join("")
      : h.padEnd(6, "0");
  return [parseInt(v.slice(0, 2), 16) / 255, parseInt(v.slice(2, 4), 16) / 255, parseInt(v.slice(4, 6), 16) / 255];
}

export function rgbCss(c: RGB, alpha = 1): string {
  const [r, g, b] = c.map((x) => Math.round(Math.max(0, Math.min(1, x)) * 255));
  return alpha >= 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

export function mix(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

export function luminance(c: RGB): number {
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

// patternviz_widget/_style.py CLASS_COLORS: Okabe–Ito for the first 8 classes, then 12 from tab20
export const DEFAULT_PALETTE = [
  "#0072b2",
  "#e69f00",
  "#009e73",
  "#d55e00",
  "#cc79a7",
  "#56b4e9",
  "#f0e442",
  "#000000",
  "#8c564b",
  "#9467bd",
  "#bcbd22",
  "#17becf",
  "#e377c2",
  "#7f7f7f",
  "#aec7e8",
  "#ffbb78",
  "#98df8a",
  "#ff9896",
  "#c5b0d5",
  "#c49c94",
];

function relLum(c: RGB): number {
  const lin = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
}

/** WCAG contrast ratio (1–21) of two colours. */
export function contrast(a: RGB, b: RGB): number {
  const la = relLum(a),
    lb = relLum(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/**
 * `color` darkened (on a light background) or lightened (on a dark one) just enough to reach a
 * contrast `ratio` on `bg`: labels are text in class colour (patternviz_widget/_style.py `readable`).
 */
export function readable(color: RGB, bg: RGB, ratio = 3): RGB {
  if (contrast(color, bg) >= ratio) return color;
  const target: RGB = contrast([0, 0, 0], bg) >= contrast([1, 1, 1], bg) ? [0, 0, 0] : [1, 1, 1];
  let out = color;
  for (let step = 1; step <= 20; step++) {
    out = mix(color, target, step / 20);
    if (contrast(out, bg) >= ratio) break;
  }
  return out;
}

export function classColor(palette: string[], c: number): string {
  const p = palette.length ? palette : DEFAULT_PALETTE;
  return p[((c % p.length) + p.length) % p.length];
}

let probe: CanvasRenderingContext2D | null = null;

/** Parse any CSS colour the browser understands ("rgb(...)", "#fff", "white") into RGB. */
export function parseCssColor(value: string, fallback: RGB): RGB {
  let v = value.trim();
  if (!v) return fallback;
  if (!v.startsWith("#") && !v.startsWith("rgb") && typeof document !== "undefined") {
    probe = probe ?? document.createElement("canvas").getContext("2d");
    if (probe) {
      probe.fillStyle = "#010203";
      probe.fillStyle = v; // the canvas normalises names, hsl(), ... to #rrggbb or rgba()
      const out = String(probe.fillStyle);
      if (out === "#010203" && v.toLowerCase() !== "#010203") return fallback;
      v = out;
    }
  }
  if (v.startsWith("#")) return hexToRgb(v);
  const m = v.match(/rgba?\(([^)]+)\)/);
  if (m) {
    const parts = m[1]
      .split(/[ ,/]+/)
      .filter(Boolean)
      .map(Number);
    if (parts.length >= 3 && parts.slice(0, 3).every((x) => Number.isFinite(x))) {
      return [parts[0] / 255, parts[1] / 255, parts[2] / 255];
    }
  }
  return fallback;
}
