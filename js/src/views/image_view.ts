// Image view: one probe image with the current layer's region grid; knowledge points outlined
// (red: reliable, dashed orange: unreliable), the rest dimmed, as in the paper's highlighted-region
// figures. Linked both ways: hover a cell = hover its point; click = select it (shift: add).
import { classColor, rgbCss } from "../lib/colors";
import { button, h } from "../lib/dom";
import type { Theme } from "../lib/theme";
import { drawPatch, type Atlas, type PointSet } from "../data";

export interface ImageViewCallbacks {
  seek(image: number): void;
  hoverRow(row: number): void;
  clickRow(row: number, shift: boolean): void;
}

export interface ImageViewState {
  image: number;
  numImages: number;
  atlas: Atlas | null;
  points: PointSet | null; // full (not subsampled) points of the current key
  /** 1 for selected rows of the current layer */
  selected: Uint8Array;
  hoverRow: number;
  classNames: string[];
  palette: string[];
  theme: Theme;
  samples: boolean;
}

export interface ImageView {
  el: HTMLElement;
  update(s: ImageViewState): void;
  destroy(): void;
}

const SIZE = 232;

export function createImageView(parent: HTMLElement, cb: ImageViewCallbacks): ImageView {
  const el = h("div", { cls: "pv-image", attrs: { "data-pv": "image-view" } });
  parent.appendChild(el);
  let state: ImageViewState | null = null;
  const prev = button(
    { icon: "prev", title: "Previous image", pv: "image-prev" },
    () => state && cb.seek(Math.max(0, state.image - 1)),
  );
  const next = button(
    { icon: "next", title: "Next image", pv: "image-next" },
    () => state && cb.seek(Math.min(state.numImages - 1, state.image + 1)),
  );
  const title = h("div", { cls: "pv-image-title", attrs: { "data-pv": "image-title" } });
  const canvas = h("canvas", { cls: "pv-image-canvas", attrs: { "data-pv": "image-canvas" } });
  const caption = h("div", { cls: "pv-image-caption", attrs: { "data-pv": "image-caption" } });
  el.append(h("div", { cls: "pv-image-head" }, [prev, title, next]), canvas, caption);
  let rows: number[] = []; // rows of the current image (regions)
  let rowsFor: { p: PointSet | null; image: number } = { p: null, image: -1 };

  function cellRect(p: PointSet, row: number): [number, number, number, number] {
    const lay = p.layout!;
    const [gr, gc] = lay.gridShape;
    const r = lay.grid[2 * row],
      c = lay.grid[2 * row + 1];
    return [(c / gc) * SIZE, (r / gr) * SIZE, SIZE / gc, SIZE / gr];
  }

  function rowAt(x: number, y: number): number {
    const p = state?.points;
    if (!p || !p.layout || state?.samples) return -1;
    for (const row of rows) {
      const [cx, cy, cw, ch] = cellRect(p, row);
      if (x >= cx && x < cx + cw && y >= cy && y < cy + ch) return row;
    }
    return -1;
  }

  function draw(): void {
    const s = state;
    if (!s) return;
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    canvas.width = SIZE * dpr;
    canvas.height = SIZE * dpr;
    canvas.style.width = `${SIZE}px`;
    canvas.style.height = `${SIZE}px`;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = rgbCss(s.theme.border);
    ctx.fillRect(0, 0, SIZE, SIZE);
    if (s.atlas) drawPatch(ctx, s.atlas, s.image, null, 0, 0, SIZE, SIZE);
    const p = s.points;
    let kp = 0,
      reliable = 0;
    if (rowsFor.p !== p || rowsFor.image !== s.image) {
      rows = [];
      if (p) for (let i = 0; i < p.n; i++) if (p.image[i] === s.image) rows.push(i);
      rowsFor = { p, image: s.image };
    }
    if (p && p.layout && !s.samples) {
      ctx.fillStyle = "rgba(0,0,0,0.55)";
      for (const row of rows) if (p.glyph[row] === 0) ctx.fillRect(...cellRect(p, row));
      for (const row of rows) {
        const g = p.glyph[row];
        if (g === 0) continue;
        kp++;
        if (g === 1) reliable++;
        const [x, y, w, hh] = cellRect(p, row);
        ctx.setLineDash(g === 2 ? [3, 2] : []);
        ctx.strokeStyle = g === 1 ? "#e8292f" : "#f28e2b";
        ctx.lineWidth = 2;
        ctx.strokeRect(x + 1, y + 1, w - 2, hh - 2);
      }
      ctx.setLineDash([]);
      for (const row of rows) {
        if (!s.selected[row]) continue;
        const [x, y, w, hh] = cellRect(p, row);
        ctx.strokeStyle = rgbCss(s.theme.accent);
        ctx.lineWidth = 3;
        ctx.strokeRect(x + 1.5, y + 1.5, w - 3, hh - 3);
      }
      if (rows.includes(s.hoverRow)) {
        const [x, y, w, hh] = cellRect(p, s.hoverRow);
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 2;
        ctx.strokeRect(x, y, w, hh);
        const b = p.layout.box.subarray(4 * s.hoverRow, 4 * s.hoverRow + 4);
        const [ih, iw] = s.atlas?.inputSize ?? [1, 1];
        ctx.setLineDash([4, 3]);
        ctx.strokeStyle = "rgba(255,255,255,0.85)";
        ctx.lineWidth = 1;
        ctx.strokeRect(
          (b[0] / iw) * SIZE,
          (b[1] / ih) * SIZE,
          ((b[2] - b[0]) / iw) * SIZE,
          ((b[3] - b[1]) / ih) * SIZE,
        );
        ctx.setLineDash([]);
      }
    }
    const label = s.atlas ? s.atlas.labels[s.image] : -1;
    title.textContent = `image ${s.image} / ${Math.max(s.numImages - 1, 0)}`;
    caption.replaceChildren(
      h("span", { cls: "pv-swatch", attrs: { style: `background:${classColor(s.palette, Math.max(label, 0))}` } }),
      h("span", { text: label >= 0 ? (s.classNames[label] ?? String(label)) : "" }),
      h("span", {
        cls: "pv-muted",
        text: s.samples || !p ? "" : `  ${kp} KP · ${reliable} reliable · ${rows.length} regions`,
      }),
    );
  }

  const onMove = (e: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    cb.hoverRow(rowAt(e.clientX - r.left, e.clientY - r.top));
  };
  const onLeave = () => cb.hoverRow(-1);
  const onClick = (e: MouseEvent) => {
    const r = canvas.getBoundingClientRect();
    const row = rowAt(e.clientX - r.left, e.clientY - r.top);
    if (row >= 0) cb.clickRow(row, e.shiftKey);
  };
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerleave", onLeave);
  canvas.addEventListener("click", onClick);

  return {
    el,
    update(s) {
      state = s;
      prev.disabled = s.image <= 0;
      next.disabled = s.image >= s.numImages - 1;
      draw();
    },
    destroy() {
      canvas.removeEventListener("pointermove", onMove);
      canvas.removeEventListener("pointerleave", onLeave);
      canvas.removeEventListener("click", onClick);
      el.remove();
    },
  };
}
