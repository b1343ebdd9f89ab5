// The widget's page: builds the layout, wires every view to the traits, and keeps nothing that
// Python cannot read (tool, hover position and camera-in-motion are the only local state).
// What each part does lives in page/: the data drawn (panes), the views around the plot (side),
// what the user does (interactions), the selection and the state they share (context).
import { SAMPLE } from "./data";
import { defaultCamera, fromTrait, type Angles } from "./lib/camera";
import { h } from "./lib/dom";
import { readTheme, watchTheme } from "./lib/theme";
import { setTraits, type Model } from "./model";
import type { Page, PageState, Shared, Views } from "./page/context";
import { createInteractions, type Interactions } from "./page/interactions";
import { createPanes } from "./page/panes";
import { Selection } from "./page/selection";
import { createSideViews } from "./page/side";
import { Local, mainKey, paneTitle } from "./state";
import { createEmbeddingView } from "./views/embedding";
import { createImageView } from "./views/image_view";
import { createLayerStrip } from "./views/layer_strip";
import { createLegend, createStats } from "./views/legend";
import { createTimeline } from "./views/timeline";
import { createToolbar } from "./views/toolbar";
import { createTooltip } from "./views/tooltip";

export type { Shared } from "./page/context";

export function createApp(el: HTMLElement, model: Model, shared: Shared): () => void {
  const { data } = shared;
  const root = h("div", { cls: "pv-root", attrs: { tabindex: 0, "data-pv": "root" } });
  el.appendChild(root);
  const state: PageState = { theme: readTheme(root), local: new Local(), sources: [], mainPoints: null, atlas: null };
  const local = state.local;
  const selection = new Selection(model);
  const cleanups: (() => void)[] = [];
  const on = (ev: string, fn: () => void) => {
    model.on(ev, fn);
    cleanups.push(() => model.off(ev, fn));
  };
  // the views' callbacks reach these once they exist (no view calls back while it is built)
  let act: Interactions | null = null;

  // ---- layout -----------------------------------------------------------------------------------
  const toolbar = createToolbar(root, model, {
    tool: () => local.tool,
    setTool: (t) => {
      local.tool = t;
      emb.el.dataset.tool = t;
    },
    reset: () => emb.reset(),
    clearSelection: () => selection.set([]),
    selectionCount: () => selection.size,
  });
  const body = h("div", { cls: "pv-body" });
  const sideEl = h("div", { cls: "pv-side" });
  root.appendChild(body);
  const status = h("div", { cls: "pv-status", attrs: { "data-pv": "status" } });
  const emb = createEmbeddingView(body, {
    theme: () => state.theme,
    tool: () => local.tool,
    onHover: (pane, index, x, y) => act?.hoverFromView(pane, index, x, y),
    onSelect: (pane, indices, how) => act?.selectFromView(pane, indices, how),
    onClick: (pane, index, shift) => act?.clickFromView(pane, index, shift),
    onCamera: (c) => act?.cameraMoved(c),
    onBackend: (kind) => {
      root.dataset.backend = kind;
      if (model.get("backend") !== kind) setTraits(model, { backend: kind });
    },
    defaultAngles,
  });
  /** The catalog's data-chosen view of the shown model (the exported figures start from it too). */
  function defaultAngles(): Angles | null {
    const cat = model.get("catalog");
    return cat?.cameras?.[model.get("model")] ?? cat?.cameras?.[cat?.model_name ?? ""] ?? null;
  }
  emb.el.dataset.tool = local.tool;
  emb.el.appendChild(status);
  const legend = createLegend(emb.el);
  body.appendChild(sideEl);
  const image = createImageView(sideEl, {
    seek: (i) => setTraits(model, { probe_image: i }),
    hoverRow: (row) => act?.hoverRow(row),
    clickRow: (row, shift) => act?.toggleRow(row, shift),
  });
  const stats = createStats(sideEl);
  const strip = createLayerStrip(root, (id) => {
    if (id === SAMPLE) setTraits(model, { feature_kind: "samples" });
    else setTraits(model, { feature_kind: "regions", layer: id });
  });
  const timeline = createTimeline(root, {
    seek: (e) => setTraits(model, { epoch: e }),
    togglePlay: () => act?.togglePlay(),
  });
  const tooltip = createTooltip(root);

  const views: Views = { root, status, toolbar, emb, legend, image, stats, strip, timeline, tooltip };
  const page: Page = { model, shared, views, state, selection };
  const side = createSideViews(page);
  const panes = createPanes(page, side);
  const interactions = createInteractions(page, side);
  act = interactions;
  const { updateSide, updateStrip, updateTimeline } = side;
  const refresh = panes.refresh;

  const onKey = (e: KeyboardEvent) => interactions.onKey(e);
  root.addEventListener("keydown", onKey);
  cleanups.push(() => root.removeEventListener("keydown", onKey));

  // ---- trait listeners ---------------------------------------------------------------------------
  // the toolbar and timeline follow the frame that draws the new points (their DOM changes would
  // otherwise be styled, laid out and painted with it); the latest request wins
  let chromeRaf = 0;
  let chromeTimer: ReturnType<typeof setTimeout> | undefined;
  const chromeLater = () => {
    if (chromeRaf || chromeTimer !== undefined) return;
    chromeRaf = requestAnimationFrame(() => {
      chromeRaf = 0;
      chromeTimer = setTimeout(() => {
        chromeTimer = undefined;
        toolbar.update();
        updateTimeline();
      }, 0);
    });
  };
  cleanups.push(() => {
    cancelAnimationFrame(chromeRaf);
    clearTimeout(chromeTimer);
  });
  const all = () => {
    chromeLater();
    void refresh();
  };
  for (const name of [
    "model",
    "condition",
    "epoch",
    "layer",
    "feature_kind",
    "threshold",
    "mode",
    "compare",
    "compare_with",
    "catalog",
    "ellipsoids",
  ])
    on(`change:${name}`, all);
  on("change:summary", () => {
    updateTimeline();
    updateStrip();
    updateSide();
  });
  on("change:selection", () => {
    selection.decode();
    toolbar.update();
    if (state.mainPoints) selection.rebuildFlags(state.mainPoints.n);
    void refresh();
  });
  on("change:probe_image", () => (model.get("mode") === "forward" ? void refresh() : updateSide()));
  on("change:hover", () => {
    const row = model.get("hover");
    if (local.hover && local.hover.id === row) return;
    if (model.get("mode") !== "forward") emb.setHover(row >= 0 ? state.sources.map(() => row) : []);
    updateSide();
  });
  on("change:camera", () => {
    const t = model.get("camera");
    if (JSON.stringify(t) === interactions.lastCameraSent()) return;
    emb.setCamera(fromTrait(t, defaultCamera(state.mainPoints?.radius ?? 1, defaultAngles())));
    strip.redraw(emb.camera());
  });
  on("change:renderer", () => emb.setRenderer(model.get("renderer")));
  on("change:height", () => (root.style.height = `${model.get("height")}px`));

  // snapshots: Python asks, the page answers with the main view as PNG bytes
  const onMsg = (content: { kind?: string; id?: string }) => {
    if (!content || content.kind !== "pv:snapshot") return;
    const title = `${paneTitle(mainKey(model), "")} · τ=${model.get("threshold").toFixed(2)}`;
    const items = legend
      .items()
      .slice(0, 20)
      .map((it) => ({ color: it.color, label: it.label }));
    emb.snapshot(items, title).then(
      (bytes) => model.send({ kind: "pv:snapshot-reply", id: content.id }, undefined, [bytes.buffer as ArrayBuffer]),
      (e) => model.send({ kind: "pv:snapshot-reply", id: content.id, error: String(e) }),
    );
  };
  model.on("msg:custom", onMsg);
  cleanups.push(() => model.off("msg:custom", onMsg));

  cleanups.push(
    watchTheme(() => {
      state.theme = readTheme(root);
      root.classList.toggle("pv-dark", state.theme.dark);
      emb.requestRender();
      updateStrip();
      updateSide();
      updateTimeline();
    }),
  );

  // ---- a read-only probe for browser tests and benchmarks (no state lives here) --------------------
  (root as unknown as { __pv: unknown }).__pv = {
    points(pane: number) {
      const pr = emb.projectedPoints(pane);
      const src = state.sources[pane];
      if (!pr || !src) return null;
      const r = emb.el.getBoundingClientRect();
      const xy: number[] = [];
      for (let i = 0; i < pr.xy.length; i += 2) xy.push(pr.xy[i] + pr.offsetX + r.left, pr.xy[i + 1] + r.top);
      return { xy, label: Array.from(src.data.cidx), glyph: Array.from(src.data.glyph) };
    },
    frameMs: () => emb.lastFrameMs(),
    frames: (since = 0) => emb.frames().filter((f) => f[0] >= since),
    renderNow: () => emb.renderNow(),
    cache: () => ({
      entries: shared.cache.size,
      bytes: shared.cache.totalBytes,
      hits: shared.cache.hits,
      misses: shared.cache.misses,
    }),
  };

  // ---- first paint ---------------------------------------------------------------------------------
  root.style.height = `${model.get("height")}px`;
  root.classList.toggle("pv-dark", state.theme.dark);
  if (model.get("renderer") !== "auto") emb.setRenderer(model.get("renderer"));
  const cam0 = model.get("camera");
  if (cam0 && cam0.distance !== undefined) emb.setCamera(fromTrait(cam0, defaultCamera(1, defaultAngles())));
  const firstKey = data.takeFirstView(model.get("first_view"));
  all();
  let firstSent = false;
  const atlasLater = () =>
    data.atlas().then(
      (a) => {
        state.atlas = a;
        updateSide();
      },
      () => undefined,
    );
  // after the first full frame: tell Python (it empties `first_view`), then ask for the atlas
  afterFirstFrame(() => {
    if (!firstSent && firstKey) model.send({ kind: "pv:first-frame", key: firstKey });
    firstSent = true;
    void atlasLater();
  });

  function afterFirstFrame(fn: () => void): void {
    let tries = 0;
    const check = () => {
      if (emb.frames().some((f) => f[1] > 0) || ++tries > 600) fn();
      else setTimeout(check, 50);
    };
    requestAnimationFrame(() => setTimeout(check, 0));
  }

  return () => {
    panes.destroy();
    interactions.destroy();
    cleanups.forEach((f) => f());
    [toolbar, emb, image, stats, strip, timeline, tooltip, legend].forEach((v) => v.destroy());
    local.destroy();
    root.remove();
  };
}
