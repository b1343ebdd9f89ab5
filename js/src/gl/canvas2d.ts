// Canvas2D fallback when WebGL is unavailable: the same camera, glyphs and decorations, drawn on
// the CPU (glyph paths up to ~60k points, then 2-px splats into an ImageData).
import { makeCamera, project } from "../lib/camera";
import { hexToRgb, mix, rgbCss, type RGB } from "../lib/colors";
import type { Backend, PaneData, RenderOptions } from "./types";

const GLYPH_LIMIT = 60_000;

export class Canvas2DBackend implements Backend {
  readonly kind = "canvas2d" as const;
  readonly canvas: HTMLCanvasElement;
  private ctx: CanvasRenderingContext2D;
  private panes: (PaneData | null)[] = [];
  private dpr = 1;
  private xy = new Float32Array(0);
  private depth = new Float32Array(0);

  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "pv-canvas";
    const ctx = this.canvas.getContext("2d");
    if (!ctx) throw new Error("patternviz: neither WebGL nor Canvas2D is available in this browser");
    this.ctx = ctx;
  }

  resize(width: number, height: number, dpr: number): void {
    this.dpr = dpr;
    this.canvas.width = Math.max(1, Math.round(width * dpr));
    this.canvas.height = Math.max(1, Math.round(height * dpr));
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
  }

  setPanes(panes: (PaneData | null)[]): void {
    this.panes = panes.slice();
  }

  render(opts: RenderOptions): void {
    const { ctx, dpr } = this;
    const bg = opts.theme.background;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = rgbCss(bg);
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.panes.forEach((pane, i) => {
      const vp = opts.viewports[i];
      if (!pane || !vp || vp.w < 2 || vp.h < 2) return;
      ctx.save();
      ctx.setTransform(dpr, 0, 0, dpr, vp.x * dpr, vp.y * dpr);
      ctx.beginPath();
      ctx.rect(0, 0, vp.w, vp.h);
      ctx.clip();
      this.drawPane(pane, vp.w, vp.h, opts, opts.hover[i] ?? -1);
      ctx.restore();
    });
  }

  private drawPane(p: PaneData, w: number, h: number, opts: RenderOptions, hover: number): void {
    const ctx = this.ctx;
    const cam = makeCamera(opts.camera, w / h);
    const bg = opts.theme.background;
    const r = Math.max(p.radius, 1e-6);
    const line = (a: number[], b: number[], color: string, width = 1) => {
      const { xy } = project(new Float32Array([...a, ...b]), cam, w, h);
      if (!Number.isFinite(xy[0]) || !Number.isFinite(xy[2])) return null;
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.beginPath();
      ctx.moveTo(xy[0], xy[1]);
      ctx.lineTo(xy[2], xy[3]);
      ctx.stroke();
      return xy;
    };
    if (opts.showAxes) {
      const L = r * 1.25;
      const c = rgbCss(opts.theme.border, 0.8);
      line([-L, 0, 0], [L, 0, 0], c);
      line([0, -L, 0], [0, L, 0], c);
      line([0, 0, -L], [0, 0, L], c);
    }
    if (p.ellipsoids) {
      p.ellipsoids.forEach((e, k) => {
        if (!e) return;
        const color = rgbCss(hexToRgb(p.muColors[k] ?? "#888"), 0.45);
        for (const [u, v] of [
          [0, 1],
          [1, 2],
          [0, 2],
        ]) {
          const ring = new Float32Array(3 * 49);
          for (let s = 0; s <= 48; s++) {
            const t = (s / 48) * Math.PI * 2;
            for (let d = 0; d < 3; d++)
              ring[3 * s + d] = e.centre[d] + Math.cos(t) * e.axes[u][d] + Math.sin(t) * e.axes[v][d];
          }
          const { xy } = project(ring, cam, w, h);
          ctx.strokeStyle = color;
          ctx.lineWidth = 1;
          ctx.beginPath();
          for (let s = 0; s <= 48; s++) (s ? ctx.lineTo : ctx.moveTo).call(ctx, xy[2 * s], xy[2 * s + 1]);
          ctx.stroke();
        }
      });
    }
    this.drawPoints(p, w, h, cam, opts, hover, bg);
    if (p.path && p.path.length >= 6) {
      const { xy } = project(p.path, cam, w, h);
      ctx.strokeStyle = "#888";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (let s = 0; s < xy.length / 2; s++) (s ? ctx.lineTo : ctx.moveTo).call(ctx, xy[2 * s], xy[2 * s + 1]);
      ctx.stroke();
    }
    if (p.mu) {
      p.mu.forEach((m, k) => {
        const n = Math.hypot(m[0], m[1], m[2]);
        if (!(n > 0)) return;
        const tip = [(m[0] / n) * r * 1.15, (m[1] / n) * r * 1.15, (m[2] / n) * r * 1.15];
        const xy = line([0, 0, 0], tip, p.muColors[k] ?? "#888", 2);
        if (!xy) return;
        const ang = Math.atan2(xy[3] - xy[1], xy[2] - xy[0]);
        ctx.fillStyle = p.muColors[k] ?? "#888";
        ctx.beginPath();
        ctx.moveTo(xy[2], xy[3]);
        ctx.lineTo(xy[2] - 9 * Math.cos(ang - 0.4), xy[3] - 9 * Math.sin(ang - 0.4));
        ctx.lineTo(xy[2] - 9 * Math.cos(ang + 0.4), xy[3] - 9 * Math.sin(ang + 0.4));
        ctx.closePath();
        ctx.fill();
      });
    }
  }

  private drawPoints(
    p: PaneData,
    w: number,
    h: number,
    cam: ReturnType<typeof makeCamera>,
    opts: RenderOptions,
    hover: number,
    bg: RGB,
  ): void {
    const ctx = this.ctx;
    const n = p.n;
    if (this.xy.length !== 2 * n) {
      this.xy = new Float32Array(2 * n);
      this.depth = new Float32Array(n);
    }
    const { xy, depth } = project(p.xyz, cam, w, h, this.xy, this.depth);
    const pal = p.palette.map(hexToRgb);
    const colorOf = (i: number): RGB => {
      let c = pal[p.cidx[i] % pal.length] ?? [0.5, 0.5, 0.5];
      if (p.glyph[i] === 0) c = mix(c, bg, 0.42);
      if (p.hasSelection && !(p.flag[i] & 1)) c = mix(c, bg, 0.8);
      return c;
    };
    const size = opts.pointSize;
    if (n > GLYPH_LIMIT) {
      const W = Math.round(w * this.dpr),
        H = Math.round(h * this.dpr);
      const out = ctx.createImageData(W, H); // transparent: axes and ellipsoids show through
      const px = out.data;
      const s = Math.max(1, Math.round((size * this.dpr) / 2));
      for (let i = 0; i < n; i++) {
        const x = Math.round(xy[2 * i] * this.dpr),
          y = Math.round(xy[2 * i + 1] * this.dpr);
        if (!(x >= 0 && y >= 0 && x < W && y < H)) continue;
        const c = colorOf(i);
        const R = c[0] * 255,
          G = c[1] * 255,
          B = c[2] * 255;
        for (let dy = 0; dy < s; dy++)
          for (let dx = 0; dx < s; dx++) {
            const xx = x + dx,
              yy = y + dy;
            if (xx >= W || yy >= H) continue;
            const o = 4 * (yy * W + xx);
            px[o] = R;
            px[o + 1] = G;
            px[o + 2] = B;
            px[o + 3] = 255;
          }
      }
      const tmp = document.createElement("canvas");
      tmp.width = W;
      tmp.height = H;
      tmp.getContext("2d")?.putImageData(out, 0, 0);
      ctx.drawImage(tmp, 0, 0, w, h);
    } else {
      const order = new Uint32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => depth[b] - depth[a]); // far first
      for (let k = 0; k < n; k++) {
        const i = order[k];
        const x = xy[2 * i],
          y = xy[2 * i + 1];
        if (!Number.isFinite(x)) continue;
        this.glyph(
          x,
          y,
          p.glyph[i],
          size * (p.glyph[i] === 0 ? 0.78 : 1),
          rgbCss(colorOf(i)),
          p.hasSelection && p.flag[i] & 1 ? rgbCss(opts.theme.accent) : null,
        );
      }
    }
    if (hover >= 0 && hover < n && Number.isFinite(xy[2 * hover])) {
      this.glyph(
        xy[2 * hover],
        xy[2 * hover + 1],
        p.glyph[hover],
        Math.max(size * 2, 12),
        rgbCss(colorOf(hover)),
        rgbCss(opts.theme.foreground),
      );
    }
  }

  private glyph(x: number, y: number, code: number, size: number, fill: string, stroke: string | null): void {
    const ctx = this.ctx;
    const r = size / 2;
    ctx.beginPath();
    if (code === 1) ctx.arc(x, y, r * 0.94, 0, Math.PI * 2);
    else if (code === 2) {
      ctx.moveTo(x, y - r);
      ctx.lineTo(x + r * 0.9, y + r * 0.65);
      ctx.lineTo(x - r * 0.9, y + r * 0.65);
      ctx.closePath();
    } else ctx.rect(x - r * 0.8, y - r * 0.8, r * 1.6, r * 1.6);
    ctx.fillStyle = fill;
    ctx.fill();
    if (stroke) {
      ctx.strokeStyle = stroke;
      ctx.lineWidth = Math.max(1.2, size * 0.14);
      ctx.stroke();
    }
  }

  destroy(): void {
    this.panes = [];
    this.canvas.remove();
  }
}
