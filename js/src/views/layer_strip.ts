// Layer strip: one small multiple per captured layer (same epoch/condition, the main camera's
// rotation), knowledge points emphasised, showing how patterns become discriminative through the forward pass. Click = select.
import { makeCamera, project, type CameraState } from "../lib/camera";
import { classColor, hexToRgb, mix, rgbCss } from "../lib/colors";
import { h } from "../lib/dom";
import type { Theme } from "../lib/theme";
import type { PointSet } from "../data";

export interface StripTile {
  id: string; // layer name, or "<sample>"
  label: string;
  points: PointSet | null;
  kp: number | null; // KPs per image
  warning?: string | null; // shown instead of the count when the count means nothing yet
  active: boolean;
  error?: string;
}

export interface LayerStripView {
  el: HTMLElement;
  /** `draw` false: lay the tiles out (names, counts, state) and leave their pictures as they are */
  update(tiles: StripTile[], cam: CameraState, theme: Theme, palette: string[], draw?: boolean): void;
  redraw(cam: CameraState): void;
  destroy(): void;
}

export function createLayerStrip(parent: HTMLElement, onPick: (id: string) => void): LayerStripView {
  const el = h("div", { cls: "pv-strip", attrs: { "data-pv": "layer-strip" } });
  parent.appendChild(el);
  let tiles: StripTile[] = [];
  let theme: Theme | null = null;
  let palette: string[] = [];
  const canvases = new Map<string, HTMLCanvasElement>();

  function draw(canvas: HTMLCanvasElement, tile: StripTile, cam: CameraState): void {
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const w = canvas.clientWidth || 132,
      hgt = canvas.clientHeight || 78;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
    const ctx = canvas.getContext("2d");
    if (!ctx || !theme) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = rgbCss(theme.background);
    ctx.fillRect(0, 0, w, hgt);
    const p = tile.points;
    if (!p) return;
    // the main camera's rotation (the data-chosen view until the user turns it), framed to this
    // layer's own radius (shapes, not scale, compare)
    const c = makeCamera({ ...cam, target: [0, 0, 0], distance: Math.max(p.radius, 1e-6) * 3.4 }, w / hgt);
    const { xy } = project(p.xyz, c, w, hgt);
    const bg = theme.background;
    const cols = palette.map(hexToRgb);
    const colorOf = (k: number) => (cols.length ? cols[k % cols.length] : hexToRgb(classColor([], k)));
    // faint class directions μ_c: where each class's knowledge points should gather
    if (p.mu?.length) {
      const tips = new Float32Array(p.mu.length * 3 + 3);
      p.mu.forEach((m, k) => {
        const n = Math.hypot(m[0], m[1], m[2]) || 1;
        tips.set([(m[0] / n) * p.radius, (m[1] / n) * p.radius, (m[2] / n) * p.radius], 3 * k);
      });
      const t = project(tips, c, w, hgt).xy;
      const o = p.mu.length;
      ctx.lineWidth = 1;
      p.mu.forEach((_, k) => {
        if (![t[2 * k], t[2 * k + 1], t[2 * o], t[2 * o + 1]].every(Number.isFinite)) return;
        ctx.strokeStyle = rgbCss(mix(colorOf(k), bg, 0.55));
        ctx.beginPath();
        ctx.moveTo(t[2 * o], t[2 * o + 1]);
        ctx.lineTo(t[2 * k], t[2 * k + 1]);
        ctx.stroke();
      });
    }
    // knowledge points emphasised: big and in full colour over small, faded other regions (faded
    // less when a layer has no knowledge points yet, so its shape still shows)
    let kps = 0;
    for (let i = 0; i < p.n; i++) if (p.glyph[i] !== 0) kps++;
    const fade = kps ? 0.62 : 0.3;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < p.n; i++) {
        const kp = p.glyph[i] !== 0;
        if ((pass === 0) === kp) continue; // non-discriminative first, knowledge points on top
        const x = xy[2 * i],
          y = xy[2 * i + 1];
        if (!(x >= 0 && y >= 0 && x < w && y < hgt)) continue;
        const base = colorOf(p.label[i]);
        ctx.fillStyle = rgbCss(kp ? base : mix(base, bg, fade));
        const s = kp ? 3 : 1.5;
        ctx.fillRect(x - s / 2, y - s / 2, s, s);
      }
    }
  }

  function build(cam: CameraState, drawTiles: boolean): void {
    const ids = tiles.map((t) => t.id).join("\n");
    if (el.dataset.ids !== ids) {
      el.replaceChildren();
      canvases.clear();
      for (const t of tiles) {
        const canvas = h("canvas", { cls: "pv-tile-canvas" });
        const name = h("div", { cls: "pv-tile-name", text: t.label, title: t.label });
        const kp = h("div", { cls: "pv-tile-kp" });
        const tile = h(
          "button",
          {
            cls: "pv-tile",
            title: `Show ${t.label}`,
            attrs: { type: "button", "data-pv": "layer-tile", "data-layer": t.id },
          },
          [canvas, name, kp],
        );
        tile.addEventListener("click", () => onPick(t.id));
        el.appendChild(tile);
        canvases.set(t.id, canvas);
      }
      el.dataset.ids = ids;
    }
    tiles.forEach((t, i) => {
      const tile = el.children[i] as HTMLElement;
      tile.classList.toggle("pv-on", t.active);
      if (tile.getAttribute("aria-pressed") !== String(t.active)) tile.setAttribute("aria-pressed", String(t.active));
      const kp = tile.querySelector(".pv-tile-kp") as HTMLElement;
      // unchanged text is left alone (a new text node is new layout for the page's next frame)
      const text = t.error ? "—" : t.warning ? "posterior ≈ uniform" : t.kp === null ? "" : `${t.kp.toFixed(1)} KP/img`;
      if (kp.textContent !== text) kp.textContent = text;
      if (kp.title !== (t.warning ?? "")) kp.title = t.warning ?? "";
      tile.classList.toggle("pv-loading", !t.points && !t.error);
      const canvas = canvases.get(t.id);
      if (canvas && drawTiles) draw(canvas, t, cam);
    });
  }

  return {
    el,
    update(next, cam, th, pal, drawTiles = true) {
      tiles = next;
      theme = th;
      palette = pal;
      build(cam, drawTiles);
    },
    redraw(cam) {
      tiles.forEach((t) => {
        const c = canvases.get(t.id);
        if (c) draw(c, t, cam);
      });
    },
    destroy() {
      el.remove();
    },
  };
}
