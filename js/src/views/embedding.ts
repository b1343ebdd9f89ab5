// The main 3-D embedding view: one canvas (WebGL via three.js, or Canvas2D), one shared orbit
// camera for one or two panes, hover picking, lasso/box selection, μ_c arrow labels, snapshots.
import { Canvas2DBackend } from "../gl/canvas2d";
import { autoPointSize, type Backend, type PaneData, type Viewport } from "../gl/types";
import { WebGLBackend, webglAvailable } from "../gl/webgl";
import type { PointSet } from "../data";
import { defaultCamera, makeCamera, orbit, pan, project, zoom, type Angles, type CameraState } from "../lib/camera";
import { hexToRgb, readable, rgbCss } from "../lib/colors";
import { placeLabels as placeLabels2D, type Box } from "../lib/labels";
import { nearest, pointsInBox, pointsInPolygon } from "../lib/lasso";
import type { Theme } from "../lib/theme";
import type { Tool } from "../state";

export interface PaneSource {
  data: PaneData;
  sets: PointSet[];
  offsets: number[];
}

/** The point set and layer row of drawn index `i` of a pane. */
export function locate(src: PaneSource, i: number): { set: PointSet; row: number; local: number } | null {
  for (let s = src.sets.length - 1; s >= 0; s--) {
    if (i >= src.offsets[s]) {
      const set = src.sets[s];
      const local = i - src.offsets[s];
      if (local >= set.n) return null;
      return { set, row: set.ids ? set.ids[local] : local, local };
    }
  }
  return null;
}

/**
 * The model's `renderer`: "auto" = WebGL (points splatted on the CPU when WebGL is software), else
 * Canvas2D; "webgl" = WebGL with GPU points; "webgl-cpu" = WebGL with CPU-splatted points.
 */
export type RendererChoice = "auto" | "webgl" | "webgl-cpu" | "canvas2d";

export interface EmbeddingCallbacks {
  theme(): Theme;
  tool(): Tool;
  onHover(pane: number, index: number, x: number, y: number): void;
  onSelect(pane: number, indices: Uint32Array, how: "replace" | "add" | "remove"): void;
  onClick(pane: number, index: number, shift: boolean): void;
  onCamera(c: CameraState): void;
  onBackend(kind: string): void;
  /** the data-chosen default viewing angles of what is shown (the catalog's `cameras`) */
  defaultAngles(): Angles | null;
}

export interface EmbeddingView {
  el: HTMLElement;
  setSources(sources: (PaneSource | null)[], titles: string[]): void;
  setHover(indices: number[]): void;
  setCamera(c: CameraState): void;
  camera(): CameraState;
  reset(): void;
  /** fit the camera to a radius, keeping the viewing angles */
  frame(radius: number): void;
  setRenderer(kind: RendererChoice): void;
  setShowAxes(on: boolean): void;
  requestRender(): void;
  renderNow(): void;
  snapshot(legend: { color: string; label: string; glyph?: number }[], title: string): Promise<Uint8Array>;
  backendKind(): string;
  lastFrameMs(): number;
  /** recent frames [time, points, ms, key of pane 0] (tests, benchmarks) */
  frames(): [number, number, number, string][];
  /** prepare a pane's points ahead of showing them */
  preload(data: PaneData): void;
  /** pane-local pixel positions of every point of a pane (tests, benchmarks) */
  projectedPoints(pane: number): { xy: Float32Array; offsetX: number } | null;
  destroy(): void;
}

export function createEmbeddingView(parent: HTMLElement, cb: EmbeddingCallbacks): EmbeddingView {
  const el = document.createElement("div");
  el.className = "pv-main";
  parent.appendChild(el);
  const overlay = document.createElement("canvas");
  overlay.className = "pv-overlay";
  const labels = document.createElement("div");
  labels.className = "pv-labels";
  el.append(overlay, labels);

  let backend: Backend | null = null;
  let sources: (PaneSource | null)[] = [];
  let titles: string[] = [];
  let cam: CameraState = defaultCamera(1);
  let camSet = false;
  let hover: number[] = [];
  let showAxes = true;
  let width = 1,
    height = 1,
    dpr = 1;
  let frame = 0;
  let frameMs = 0;
  let projVersion = 0;
  const proj: { v: number; xy: Float32Array; depth: Float32Array }[] = [];

  function makeBackend(kind: RendererChoice): void {
    backend?.destroy();
    let b: Backend | null = null;
    if (kind !== "canvas2d" && webglAvailable()) {
      try {
        b = new WebGLBackend(kind === "webgl" ? "gpu" : kind === "webgl-cpu" ? "cpu" : "auto");
      } catch (e) {
        console.warn("patternviz: WebGL failed, drawing with Canvas2D instead", e);
      }
    }
    backend = b ?? new Canvas2DBackend();
    el.insertBefore(backend.canvas, overlay);
    el.dataset.points = backend.points ?? "canvas2d"; // which point path draws (tests, benchmarks)
    backend.resize(width, height, dpr);
    backend.setPanes(sources.map((s) => s?.data ?? null));
    cb.onBackend(backend.kind);
    requestRender();
  }

  function viewports(): Viewport[] {
    const n = Math.max(sources.length, 1);
    const gap = n > 1 ? 2 : 0;
    const w = (width - gap * (n - 1)) / n;
    return sources.map((_, i) => ({ x: Math.round(i * (w + gap)), y: 0, w: Math.round(w), h: height }));
  }

  function paneAt(x: number): number {
    const vps = viewports();
    for (let i = 0; i < vps.length; i++) if (x >= vps[i].x && x < vps[i].x + vps[i].w) return i;
    return -1;
  }

  function pointSize(): number {
    const n = Math.max(0, ...sources.map((s) => s?.data.n ?? 0));
    return autoPointSize(n);
  }

  const frames: [number, number, number, string][] = []; // [time, points drawn, ms, key] of recent frames (probe)
  function renderOptions() {
    return { camera: cam, viewports: viewports(), hover, theme: cb.theme(), pointSize: pointSize(), showAxes };
  }
  function renderNow(): void {
    // a frame drawn now (resize, snapshot, probe) replaces the one requested for the next
    // animation frame: two draws of every point before one is presented cost twice the raster
    if (frame) cancelAnimationFrame(frame);
    frame = 0;
    if (!backend) return;
    const t0 = performance.now();
    backend.render(renderOptions());
    frameMs = performance.now() - t0;
    const n = sources.reduce((a, s) => a + (s?.data.n ?? 0), 0);
    frames.push([t0, n, frameMs, sources[0]?.data.key ?? ""]);
    if (frames.length > 600) frames.splice(0, frames.length - 600);
    placeLabels();
  }

  function requestRender(): void {
    if (!frame) frame = requestAnimationFrame(renderNow);
  }

  // -- μ_c labels and pane titles (HTML, textContent only) ----------------------------------
  // Labels sit next to their arrow tips without overlapping each other, the pane titles or the
  // legend (lib/labels.ts); their colour is the class colour made readable on the background.
  const pool: HTMLDivElement[] = [];
  let labelSpecs: { x: number; y: number; text: string; color: string; cls: string }[] = [];
  const LABEL_H = 14,
    LABEL_MAX = 24;
  const widths = new Map<string, number>();
  let measure: CanvasRenderingContext2D | null = null;
  function textWidth(text: string, font: string): number {
    const k = font + "\n" + text;
    let w = widths.get(k);
    if (w === undefined) {
      measure = measure ?? document.createElement("canvas").getContext("2d");
      if (measure) measure.font = font;
      w = measure ? Math.ceil(measure.measureText(text).width) : 7 * text.length;
      if (widths.size > 500) widths.clear();
      widths.set(k, w);
    }
    return w;
  }
  function obstacles(): Box[] {
    const out: Box[] = [];
    const r0 = el.getBoundingClientRect();
    el.querySelectorAll(".pv-legend, .pv-pane-title").forEach((n) => {
      const r = (n as HTMLElement).getBoundingClientRect();
      if (r.width > 0 && r.height > 0)
        out.push({ x0: r.left - r0.left, y0: r.top - r0.top, x1: r.right - r0.left, y1: r.bottom - r0.top });
    });
    return out;
  }
  function placeLabels(): void {
    labelSpecs = [];
    const vps = viewports();
    const th = cb.theme();
    const font = `650 11px ${th.font}`;
    let fixed: Box[] | null = null;
    sources.forEach((src, i) => {
      const vp = vps[i];
      if (!vp) return;
      if (titles[i]) labelSpecs.push({ x: vp.x + 10, y: 8, text: titles[i], color: "", cls: "pv-pane-title" });
      const d = src?.data;
      if (!d?.mu) return;
      const r = Math.max(d.radius, 1e-6) * 1.25;
      const tips = new Float32Array(d.mu.length * 3 + 3); // + the origin, the arrows' common start
      d.mu.forEach((m, k) => {
        const n = Math.hypot(m[0], m[1], m[2]) || 1;
        tips.set([(m[0] / n) * r, (m[1] / n) * r, (m[2] / n) * r], 3 * k);
      });
      const { xy } = project(tips, makeCamera(cam, vp.w / vp.h), vp.w, vp.h);
      const o = d.mu.length;
      const centre: [number, number] = Number.isFinite(xy[2 * o])
        ? [vp.x + xy[2 * o], xy[2 * o + 1]]
        : [vp.x + vp.w / 2, vp.h / 2];
      const anchors: [number, number][] = [],
        sizes: [number, number][] = [],
        texts: string[] = [],
        colors: string[] = [];
      d.mu.forEach((_, k) => {
        const x = xy[2 * k],
          y = xy[2 * k + 1];
        if (!Number.isFinite(x) || x < 0 || y < 0 || x > vp.w || y > vp.h || k >= 24) return;
        const full = d.muLabels[k] ?? String(k);
        const text = full.length > LABEL_MAX ? full.slice(0, LABEL_MAX - 1).trimEnd() + "…" : full;
        anchors.push([vp.x + x, y]);
        sizes.push([textWidth(text, font) + 2, LABEL_H]);
        texts.push(text);
        const c = d.muColors[k];
        colors.push(c ? rgbCss(readable(hexToRgb(c), th.background)) : "");
      });
      if (!anchors.length) return;
      fixed = fixed ?? obstacles();
      const bounds = { x0: vp.x + 2, y0: 2, x1: vp.x + vp.w - 2, y1: vp.h - 2 };
      placeLabels2D(anchors, sizes, centre, bounds, 3, fixed).forEach((b, j) => {
        labelSpecs.push({ x: b.x0, y: b.y0, text: texts[j], color: colors[j], cls: "pv-mu-label" });
        fixed!.push(b);
      });
    });
    while (pool.length < labelSpecs.length) {
      const div = document.createElement("div");
      labels.appendChild(div);
      pool.push(div);
    }
    pool.forEach((div, i) => {
      const s = labelSpecs[i];
      if (!s) {
        div.style.display = "none";
        return;
      }
      div.style.display = "";
      div.className = s.cls;
      div.textContent = s.text;
      div.style.transform = `translate(${Math.round(s.x)}px, ${Math.round(s.y)}px)`;
      div.style.color = s.color;
    });
  }

  // -- projection cache for picking -----------------------------------------------------------
  function projected(i: number): { xy: Float32Array; depth: Float32Array } | null {
    const src = sources[i];
    const vp = viewports()[i];
    if (!src || !vp) return null;
    const cached = proj[i];
    if (cached && cached.v === projVersion && cached.xy.length === 2 * src.data.n) return cached;
    const out = project(src.data.xyz, makeCamera(cam, vp.w / vp.h), vp.w, vp.h, cached?.xy, cached?.depth);
    proj[i] = { v: projVersion, ...out };
    return proj[i];
  }

  function setCam(c: CameraState, notify = true): void {
    cam = c;
    camSet = true;
    projVersion++;
    requestRender();
    if (notify) cb.onCamera(cam);
  }

  // -- pointer interactions ---------------------------------------------------------------------
  type Drag = {
    mode: "orbit" | "pan" | "lasso" | "box";
    x0: number;
    y0: number;
    x: number;
    y: number;
    pane: number;
    path: number[];
    moved: boolean;
    how: "replace" | "add" | "remove";
  };
  let drag: Drag | null = null;
  let hoverFrame = 0;
  let lastPointer: { x: number; y: number } | null = null;

  function local(e: PointerEvent | WheelEvent | MouseEvent): { x: number; y: number } {
    const r = el.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  function drawOverlay(): void {
    const ctx = overlay.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!drag || (drag.mode !== "lasso" && drag.mode !== "box")) return;
    const accent = rgbCss(cb.theme().accent);
    ctx.strokeStyle = accent;
    ctx.fillStyle = rgbCss(cb.theme().accent, 0.1);
    ctx.lineWidth = 1.5;
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    if (drag.mode === "box") ctx.rect(drag.x0, drag.y0, drag.x - drag.x0, drag.y - drag.y0);
    else
      drag.path.forEach((v, k) =>
        k % 2 === 0 ? (k === 0 ? ctx.moveTo(v, drag!.path[1]) : ctx.lineTo(v, drag!.path[k + 1])) : null,
      );
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  }

  const onDown = (e: PointerEvent) => {
    if (e.button > 2) return;
    const p = local(e);
    const tool = cb.tool();
    let mode: Drag["mode"] = tool;
    if (e.button === 2 || (e.button === 0 && e.shiftKey && (tool === "orbit" || tool === "pan")))
      mode = tool === "pan" ? "orbit" : "pan";
    if (e.button === 1) mode = "pan";
    const how = e.altKey ? "remove" : e.shiftKey ? "add" : "replace";
    drag = { mode, x0: p.x, y0: p.y, x: p.x, y: p.y, pane: paneAt(p.x), path: [p.x, p.y], moved: false, how };
    el.setPointerCapture?.(e.pointerId);
    el.classList.add("pv-dragging");
    e.preventDefault();
  };

  const onMove = (e: PointerEvent) => {
    const p = local(e);
    lastPointer = p;
    if (!drag) {
      if (!hoverFrame) hoverFrame = requestAnimationFrame(pickHover);
      return;
    }
    const dx = p.x - drag.x,
      dy = p.y - drag.y;
    if (Math.abs(p.x - drag.x0) + Math.abs(p.y - drag.y0) > 3) drag.moved = true;
    drag.x = p.x;
    drag.y = p.y;
    if (drag.mode === "orbit") setCam(orbit(cam, dx, dy));
    else if (drag.mode === "pan") setCam(pan(cam, dx, dy, height, viewports()[Math.max(drag.pane, 0)]?.w));
    else {
      if (drag.mode === "lasso") drag.path.push(p.x, p.y);
      drawOverlay();
    }
  };

  const onUp = (e: PointerEvent) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    el.classList.remove("pv-dragging");
    drawOverlay();
    if (!d.moved) {
      const i = pickAt(d.x0, d.y0);
      if (i) cb.onClick(i.pane, i.index, e.shiftKey);
      return;
    }
    if (d.mode === "lasso" || d.mode === "box") {
      const pane = d.pane < 0 ? 0 : d.pane;
      const vp = viewports()[pane];
      const pr = projected(pane);
      if (!vp || !pr) return;
      let hit: Uint32Array;
      if (d.mode === "box") hit = pointsInBox(pr.xy, d.x0 - vp.x, d.y0, d.x - vp.x, d.y);
      else
        hit = pointsInPolygon(
          pr.xy,
          d.path.map((v, k) => (k % 2 === 0 ? v - vp.x : v)),
        );
      cb.onSelect(pane, hit, d.how);
    }
  };

  function pickAt(x: number, y: number): { pane: number; index: number } | null {
    const pane = paneAt(x);
    const vp = viewports()[pane];
    const pr = projected(pane);
    if (!vp || !pr) return null;
    const i = nearest(pr.xy, x - vp.x, y, Math.max(7, pointSize()), pr.depth);
    return i >= 0 ? { pane, index: i } : null;
  }

  function pickHover(): void {
    hoverFrame = 0;
    if (!lastPointer || drag) return;
    const hit = pickAt(lastPointer.x, lastPointer.y);
    cb.onHover(hit?.pane ?? -1, hit?.index ?? -1, lastPointer.x, lastPointer.y);
  }

  const onLeave = () => {
    lastPointer = null;
    cb.onHover(-1, -1, 0, 0);
  };

  const onWheel = (e: WheelEvent) => {
    e.preventDefault();
    const dy = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    setCam(zoom(cam, Math.exp(dy * 0.0012)));
  };

  const onDbl = () => reset();
  const onContext = (e: Event) => e.preventDefault();

  el.addEventListener("pointerdown", onDown);
  el.addEventListener("pointermove", onMove);
  el.addEventListener("pointerup", onUp);
  el.addEventListener("pointercancel", onUp);
  el.addEventListener("pointerleave", onLeave);
  el.addEventListener("wheel", onWheel, { passive: false });
  el.addEventListener("dblclick", onDbl);
  el.addEventListener("contextmenu", onContext);

  const ro = new ResizeObserver(() => {
    const r = el.getBoundingClientRect();
    const w = Math.max(1, Math.round(r.width)),
      h = Math.max(1, Math.round(r.height));
    const d = Math.min(window.devicePixelRatio || 1, 2);
    if (w === width && h === height && d === dpr) return;
    width = w;
    height = h;
    dpr = d;
    overlay.width = Math.round(w * d);
    overlay.height = Math.round(h * d);
    overlay.style.width = `${w}px`;
    overlay.style.height = `${h}px`;
    backend?.resize(w, h, d);
    projVersion++;
    renderNow();
  });
  ro.observe(el);

  function reset(): void {
    const r = Math.max(0, ...sources.map((s) => s?.data.radius ?? 0)) || 1;
    setCam(defaultCamera(r, cb.defaultAngles()));
  }

  makeBackend("auto");

  return {
    el,
    setSources(next, nextTitles) {
      sources = next;
      titles = nextTitles;
      projVersion++;
      backend?.setPanes(sources.map((s) => s?.data ?? null));
      if (!camSet && sources.some((s) => s && s.data.n > 0)) reset();
      requestRender();
    },
    setHover(indices) {
      hover = indices;
      requestRender();
    },
    setCamera(c) {
      setCam(c, false);
    },
    camera: () => cam,
    reset,
    frame(radius) {
      const d = defaultCamera(radius);
      setCam({ ...cam, distance: d.distance, target: [0, 0, 0] });
    },
    setRenderer(kind) {
      makeBackend(kind);
    },
    setShowAxes(on) {
      showAxes = on;
      requestRender();
    },
    requestRender,
    renderNow,
    async snapshot(legend, title) {
      renderNow();
      const c = document.createElement("canvas");
      c.width = Math.round(width * dpr);
      c.height = Math.round(height * dpr);
      const ctx = c.getContext("2d")!;
      const th = cb.theme();
      ctx.fillStyle = rgbCss(th.background);
      ctx.fillRect(0, 0, c.width, c.height);
      if (backend?.capture) {
        const px = backend.capture(renderOptions());
        const tmp = document.createElement("canvas");
        tmp.width = px.width;
        tmp.height = px.height;
        tmp.getContext("2d")!.putImageData(px, 0, 0);
        ctx.drawImage(tmp, 0, 0, c.width, c.height);
      } else if (backend) ctx.drawImage(backend.canvas, 0, 0, c.width, c.height);
      ctx.scale(dpr, dpr);
      ctx.textBaseline = "top";
      for (const s of labelSpecs) {
        ctx.font = s.cls === "pv-pane-title" ? `600 12px ${th.font}` : `600 11px ${th.font}`;
        ctx.fillStyle = s.color || rgbCss(th.foreground);
        ctx.fillText(s.text, s.x, s.y);
      }
      ctx.font = `11px ${th.font}`;
      let y = height - 14 * legend.length - 8;
      for (const item of legend) {
        ctx.fillStyle = item.color;
        ctx.fillRect(10, y + 2, 9, 9);
        ctx.fillStyle = rgbCss(th.foreground);
        ctx.fillText(item.label, 24, y);
        y += 14;
      }
      if (title) {
        ctx.font = `600 12px ${th.font}`;
        ctx.fillStyle = rgbCss(th.muted);
        ctx.fillText(title, 10, height - 14 * legend.length - 26);
      }
      const blob: Blob = await new Promise((res, rej) =>
        c.toBlob((b) => (b ? res(b) : rej(new Error("toBlob failed"))), "image/png"),
      );
      return new Uint8Array(await blob.arrayBuffer());
    },
    backendKind: () => backend?.kind ?? "",
    lastFrameMs: () => frameMs,
    frames: () => frames,
    preload: (data) => backend?.preload?.(data),
    projectedPoints(pane) {
      const pr = projected(pane);
      const vp = viewports()[pane];
      return pr && vp ? { xy: pr.xy, offsetX: vp.x } : null;
    },
    destroy() {
      ro.disconnect();
      if (frame) cancelAnimationFrame(frame);
      if (hoverFrame) cancelAnimationFrame(hoverFrame);
      el.removeEventListener("pointerdown", onDown);
      el.removeEventListener("pointermove", onMove);
      el.removeEventListener("pointerup", onUp);
      el.removeEventListener("pointercancel", onUp);
      el.removeEventListener("pointerleave", onLeave);
      el.removeEventListener("wheel", onWheel);
      el.removeEventListener("dblclick", onDbl);
      el.removeEventListener("contextmenu", onContext);
      backend?.destroy();
      backend = null;
      el.remove();
    },
  };
}
