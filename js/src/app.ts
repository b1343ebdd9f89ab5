// The widget's page: builds the layout, wires every view to the traits, and keeps nothing that
// Python cannot read (tool, hover position and camera-in-motion are the only local state).
import type { Cache } from "./cache";
import { Data, keyString, SAMPLE, type Atlas, type PointSet } from "./data";
import type { PaneData } from "./gl/types";
import { toTrait, fromTrait, defaultCamera, type Angles, type CameraState } from "./lib/camera";
import { classColor } from "./lib/colors";
import { h } from "./lib/dom";
import { readTheme, watchTheme, type Theme } from "./lib/theme";
import { setTraits, type Model } from "./model";
import type { Rpc } from "./rpc";
import { compareKey, currentLayer, embeddedLayers, epochsFor, hasSamples, Local, mainKey, paneTitle } from "./state";
import { createEmbeddingView, locate, type PaneSource } from "./views/embedding";
import { buildForward } from "./views/forward";
import { createImageView } from "./views/image_view";
import { createLayerStrip, type StripTile } from "./views/layer_strip";
import { classItems, createLegend, createStats } from "./views/legend";
import { createTimeline } from "./views/timeline";
import { createToolbar } from "./views/toolbar";
import { createTooltip } from "./views/tooltip";
import { decodeIds, encodeIds } from "./wire";

export interface Shared {
  rpc: Rpc;
  cache: Cache;
  data: Data;
}

const THUMB_POINTS = 2500;
const PLAY_MS = 900;

export function createApp(el: HTMLElement, model: Model, shared: Shared): () => void {
  const { data } = shared;
  const root = h("div", { cls: "pv-root", attrs: { tabindex: 0, "data-pv": "root" } });
  el.appendChild(root);
  let theme: Theme = readTheme(root);
  const local = new Local();
  const cleanups: (() => void)[] = [];
  const on = (ev: string, fn: () => void) => {
    model.on(ev, fn);
    cleanups.push(() => model.off(ev, fn));
  };

  // ---- selection state (decoded once per change) ----------------------------------------------
  let selIds = decodeIds(model.get("selection"));
  let selFlags = new Uint8Array(0);
  let flagVersion = 0;
  function rebuildFlags(n: number): void {
    if (selFlags.length !== n) selFlags = new Uint8Array(n);
    else selFlags.fill(0);
    for (const id of selIds) if (id < n) selFlags[id] = 1;
    flagVersion++;
  }
  function setSelection(ids: ArrayLike<number>): void {
    setTraits(model, { selection: encodeIds(ids) });
  }

  // ---- layout -----------------------------------------------------------------------------------
  const toolbar = createToolbar(root, model, {
    tool: () => local.tool,
    setTool: (t) => {
      local.tool = t;
      emb.el.dataset.tool = t;
    },
    reset: () => emb.reset(),
    clearSelection: () => setSelection([]),
    selectionCount: () => selIds.length,
  });
  const body = h("div", { cls: "pv-body" });
  const side = h("div", { cls: "pv-side" });
  root.appendChild(body);
  const status = h("div", { cls: "pv-status", attrs: { "data-pv": "status" } });
  const emb = createEmbeddingView(body, {
    theme: () => theme,
    tool: () => local.tool,
    onHover: (pane, index, x, y) => hoverFromView(pane, index, x, y),
    onSelect: (pane, indices, how) => selectFromView(pane, indices, how),
    onClick: (pane, index, shift) => clickFromView(pane, index, shift),
    onCamera: (c) => cameraMoved(c),
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
  body.appendChild(side);
  const image = createImageView(side, {
    seek: (i) => setTraits(model, { probe_image: i }),
    hoverRow: (row) => hoverRow(row),
    clickRow: (row, shift) => toggleRow(row, shift),
  });
  const stats = createStats(side);
  const strip = createLayerStrip(root, (id) => {
    if (id === SAMPLE) setTraits(model, { feature_kind: "samples" });
    else setTraits(model, { feature_kind: "regions", layer: id });
  });
  const timeline = createTimeline(root, {
    seek: (e) => setTraits(model, { epoch: e }),
    togglePlay: () => togglePlay(),
  });
  const tooltip = createTooltip(root);

  // ---- data -> views --------------------------------------------------------------------------
  let sources: (PaneSource | null)[] = [];
  let mainPoints: PointSet | null = null;
  let atlas: Atlas | null = null;
  let token = 0;

  function names(): string[] {
    return model.get("catalog")?.class_names ?? [];
  }
  function palette(): string[] {
    return model.get("catalog")?.palette ?? [];
  }

  /** One radius per layer over every epoch/condition/model: scrubbing keeps the frame and scale. */
  function frameRadius(layer: string, fallback: number): number {
    const r = model.get("catalog")?.radius?.[layer];
    return r && Number.isFinite(r) && r > 0 ? r : fallback;
  }

  let framedFor = "";
  function frameIfNewLayer(radius: number): void {
    const what = `${model.get("mode")}|${currentLayer(model)}|${model.get("model")}`;
    if (what === framedFor) return;
    if (framedFor) emb.frame(radius); // the very first view frames itself (or uses the camera trait)
    framedFor = what;
  }

  function paneData(p: PointSet, title: string, flags = true): PaneData {
    if (flags && selFlags.length !== p.n) rebuildFlags(p.n);
    return {
      title,
      key: p.key,
      n: p.n,
      xyz: p.xyz,
      cidx: p.label,
      glyph: p.glyph,
      flag: selFlags,
      flagVersion,
      palette: palette(),
      mu: p.mu,
      muLabels: names(),
      muColors: names().map((_, c) => classColor(palette(), c)),
      ellipsoids: model.get("ellipsoids") ? p.ellipsoids : null,
      path: null,
      radius: frameRadius(p.layer, p.radius),
      hasSelection: selIds.length > 0,
      packed: p.packed,
    };
  }

  function showStatus(text: string, kind: "" | "loading" | "error" = ""): void {
    status.textContent = text;
    status.dataset.kind = kind;
    status.hidden = !text;
  }

  async function refresh(): Promise<void> {
    const my = ++token;
    const tau = model.get("threshold");
    const cat = model.get("catalog");
    if (!cat || (!embeddedLayers(model).length && !hasSamples(model))) {
      emb.setSources([], []);
      showStatus("Nothing to show yet: run study.capture() and study.embed(), then this view fills in.", "");
      updateSide();
      return;
    }
    try {
      if (model.get("mode") === "forward" && model.get("feature_kind") === "regions") {
        const layers = embeddedLayers(model);
        const keys = layers.map((l) => keyString(model.get("model"), model.get("condition"), model.get("epoch"), l));
        if (hasSamples(model)) keys.push(keyString(model.get("model"), model.get("condition"), model.get("epoch"), SAMPLE));
        const have = keys.filter((k) => data.exists(k));
        const sets = have.map((k) => data.peek(k, tau));
        if (sets.some((s) => !s)) showStatus("Loading every layer …", "loading");
        const all = await Promise.all(have.map((k, i) => (sets[i] ? Promise.resolve(sets[i]!) : data.points(k, tau)).then((p) => data.attachLayout(p))));
        if (my !== token) return;
        mainPoints = all.find((p) => p.layer === currentLayer(model)) ?? all[0] ?? null;
        const images = forwardImages();
        const src = buildForward(all, images, model.get("catalog")?.layer_colors ?? [], names(), palette());
        src.data.radius = Math.max(...all.map((p) => frameRadius(p.layer, p.radius)));
        sources = [src];
        frameIfNewLayer(src.data.radius);
        emb.setSources(sources, [`forward construction · ${images.length === 1 ? `image ${images[0]}` : `${images.length} images`} · epoch ${model.get("epoch")}`]);
        legend.update(all.map((p, i) => ({ color: src.data.palette[i % src.data.palette.length], label: p.layer === SAMPLE ? "sample feature g" : p.layer })), "layers (low → high)", true);
      } else {
        const k1 = mainKey(model);
        const k2 = compareKey(model);
        const keys = [k1, ...(k2 ? [k2] : [])];
        const cached = keys.map((k) => data.peek(k, tau) ?? data.peekFirst(k, tau));
        if (cached.some((c) => !c)) showStatus(`Loading ${paneTitle(k1, "")} …`, "loading");
        const pts = await Promise.all(keys.map((k, i) => cached[i] ?? (data.exists(k) ? data.points(k, tau) : Promise.reject(new Error(`nothing stored for ${paneTitle(k, "")} yet`)))));
        if (my !== token) return;
        mainPoints = pts[0];
        const what = model.get("compare");
        sources = pts.map((p) => ({ data: paneData(p, ""), sets: [p], offsets: [0] }));
        frameIfNewLayer(sources[0]?.data.radius ?? 1);
        emb.setSources(sources, k2 ? keys.map((k) => paneTitle(k, what)) : []);
        legend.update(classItems(names(), palette()), "classes", true);
      }
      showStatus("");
      updateStrip(false); // the strip's tiles now, so the plot keeps its size; thumbnails later
      // the frame first; side views, thumbnails, prefetch and the layout once it is on screen
      afterFrame(() => {
        if (my !== token) return;
        if (mainPoints?.partial) {
          // drawn from the first view: the tooltip and side columns follow, then the full set
          data.dropFirst();
          data.points(mainPoints.key, tau).then(() => my === token && void refresh(), () => undefined);
          return;
        }
        updateSide();
        updateStrip();
        prefetch();
        if (mainPoints && !mainPoints.layout) {
          const mp = mainPoints;
          data.attachLayout(mp).then(() => mp === mainPoints && updateSide(), () => undefined);
        }
      });
    } catch (e) {
      if (my !== token) return;
      showStatus(String(e instanceof Error ? e.message : e), "error");
    }
  }

  let afterTimer: ReturnType<typeof setTimeout> | undefined;
  let afterRaf = 0;
  /** Run `fn` once the frame requested now has been presented (the latest request wins): the
   * animation frame after the one that draws it, so side work does not compete with its raster. */
  function afterFrame(fn: () => void): void {
    cancelAnimationFrame(afterRaf);
    clearTimeout(afterTimer);
    afterRaf = requestAnimationFrame(() => {
      afterRaf = requestAnimationFrame(() => {
        afterTimer = setTimeout(fn, 0);
      });
    });
  }

  function forwardImages(): number[] {
    if (selIds.length && mainPoints && model.get("feature_kind") === "regions") {
      const seen = new Set<number>();
      for (const id of selIds) if (id < mainPoints.n && !mainPoints.ids && !mainPoints.partial) seen.add(mainPoints.image[id]);
      if (seen.size) return [...seen].slice(0, 64);
    }
    return [model.get("probe_image")];
  }

  function prefetch(): void {
    const tau = model.get("threshold");
    const eps = epochsFor(model);
    const i = eps.indexOf(model.get("epoch"));
    const m = model.get("model"), c = model.get("condition"), l = currentLayer(model);
    const next = [eps[i + 1], eps[i - 1], local.playing ? eps[i + 2] : undefined];
    const mode = model.get("mode");
    // neighbouring epochs and layers go to the GPU as they land: a scrub is a bind + one draw
    const toGpu = (key: string) =>
      data.prefetched(key, tau)?.then(
        (p) => mode === "embedding" && emb.preload({ ...paneData(p, "", false), flag: new Uint8Array(0), hasSelection: false }),
        () => undefined,
      );
    for (const e of next) if (e !== undefined) toGpu(keyString(m, c, e, l));
    const layers = embeddedLayers(model);
    const j = layers.indexOf(l);
    for (const n of [layers[j + 1], layers[j - 1]]) if (n) toGpu(keyString(m, c, model.get("epoch"), n));
    const k2 = compareKey(model);
    if (k2) data.prefetch(k2, tau);
  }

  function updateSide(): void {
    const layer = currentLayer(model);
    image.update({
      image: model.get("probe_image"),
      numImages: model.get("catalog")?.num_images ?? 0,
      atlas,
      points: mainPoints && mainPoints.layer === layer && !mainPoints.ids && !mainPoints.partial ? mainPoints : null,
      selected: selFlags,
      hoverRow: local.hover?.id ?? model.get("hover"),
      classNames: names(),
      palette: palette(),
      theme,
      samples: layer === SAMPLE,
    });
    const row = model.get("summary")?.layers?.[layer];
    const k = row ? row.epochs.indexOf(model.get("epoch")) : -1;
    const fmt = (v: number | null | undefined, pct = false) => (v === null || v === undefined ? "–" : pct ? `${(v * 100).toFixed(1)} %` : v.toFixed(2));
    const lines: [string, string][] = [];
    if (layer !== SAMPLE) {
      lines.push(["KP / image", fmt(k >= 0 ? row!.total[k] : null)], ["reliable / image", fmt(k >= 0 ? row!.reliable[k] : null)], ["r_reliable", fmt(k >= 0 ? row!.r_reliable[k] : null, true)]);
      const warning = k >= 0 ? row!.warning?.[k] : null;
      if (warning) lines.push(["note", warning]);
    }
    if (mainPoints) lines.push(["points", mainPoints.n.toLocaleString()]);
    lines.push(["selected", selIds.length.toLocaleString()]);
    stats.update(lines, `τ = ${model.get("threshold").toFixed(2)} · ${emb.backendKind() || "…"}`);
  }

  /** `fetch` false: lay the tiles out (the page keeps its size) without asking for thumbnails or
   * drawing them (they follow once the frame is on screen). */
  function updateStrip(fetch = true): void {
    const tau = model.get("threshold");
    const tiles: StripTile[] = [];
    const m = model.get("model"), c = model.get("condition"), e = model.get("epoch");
    const summary = model.get("summary")?.layers ?? {};
    const ids = [...(hasSamples(model) ? [SAMPLE] : []), ...embeddedLayers(model)];
    for (const id of ids) {
      const key = keyString(m, c, e, id);
      const exists = data.exists(key);
      const pts = exists ? data.peek(key, tau, THUMB_POINTS) ?? null : null;
      if (exists && !pts && fetch) data.points(key, tau, THUMB_POINTS).then(() => updateStrip(), () => undefined);
      const row = summary[id];
      const k = row ? row.epochs.indexOf(e) : -1;
      tiles.push({ id, label: id === SAMPLE ? "samples" : id, points: pts, kp: k >= 0 ? row.total[k] : null, warning: k >= 0 ? row.warning?.[k] ?? null : null, active: id === currentLayer(model), error: exists ? undefined : "not captured" });
    }
    strip.update(tiles, emb.camera(), theme, palette(), fetch);
  }

  function updateTimeline(): void {
    const row = model.get("summary")?.layers?.[currentLayer(model)] ?? null;
    timeline.update(epochsFor(model), model.get("epoch"), row, local.playing, theme);
  }

  // ---- interactions -----------------------------------------------------------------------------
  let hoverTimer: ReturnType<typeof setTimeout> | undefined;
  const probCache = new Map<string, { probs: Float32Array; strength: number | null }>();

  function syncHover(row: number): void {
    clearTimeout(hoverTimer);
    hoverTimer = setTimeout(() => {
      if (model.get("hover") !== row) setTraits(model, { hover: row });
    }, 200);
  }

  function hoverFromView(pane: number, index: number, x: number, y: number): void {
    const src = sources[pane];
    const hit = src && index >= 0 ? locate(src, index) : null;
    if (!hit || !src || hit.set.partial) {
      local.hover = null;
      emb.setHover([]);
      tooltip.hide();
      syncHover(-1);
      updateSide();
      return;
    }
    const twin = model.get("mode") === "forward" ? [index] : sources.map(() => index);
    local.hover = { pane, id: hit.row, index, layer: hit.set.layer, key: hit.set.key, x, y };
    emb.setHover(twin);
    syncHover(hit.set.layer === currentLayer(model) ? hit.row : -1);
    showTooltip();
    updateSide();
  }

  function showTooltip(): void {
    const hv = local.hover;
    if (!hv) return;
    const src = sources[hv.pane];
    const hit = src ? locate(src, hv.index) : null;
    if (!hit) return;
    const { set, row, local: li } = hit;
    const ck = `${set.key}|${row}|${model.get("threshold")}`;
    const got = probCache.get(ck);
    const sample = set.layer === SAMPLE;
    const lay = set.layout;
    const where = sample ? `image ${set.image[li]}` : lay ? `${set.layer} · image ${set.image[li]} · cell (${lay.grid[2 * row]}, ${lay.grid[2 * row + 1]})` : `${set.layer} · image ${set.image[li]}`;
    const er = emb.el.getBoundingClientRect();
    const rr = root.getBoundingClientRect();
    tooltip.show(
      { x: hv.x + er.left - rr.left, y: hv.y + er.top - rr.top, image: set.image[li], box: sample || !lay ? null : lay.box.subarray(4 * row, 4 * row + 4), title: where, label: set.label[li], glyph: set.glyph[li], layerName: set.layer, probs: got?.probs ?? null, strength: got?.strength ?? null },
      atlas,
      names(),
      palette(),
      rr,
    );
    if (!got) {
      shared.rpc
        .request("point", { key: set.key, id: row, threshold: model.get("threshold") }, { timeout: 15_000 })
        .then((r) => {
          probCache.set(ck, { probs: r.arrays.posterior.data as Float32Array, strength: typeof r.meta.strength === "number" ? r.meta.strength : null });
          if (probCache.size > 500) probCache.delete(probCache.keys().next().value as string);
          if (local.hover && local.hover.key === set.key && local.hover.id === row) showTooltip();
        })
        .catch(() => undefined);
    }
  }

  function hoverRow(row: number): void {
    local.hover = null;
    tooltip.hide();
    const fwd = model.get("mode") === "forward";
    emb.setHover(row >= 0 && !fwd ? sources.map(() => row) : []);
    syncHover(row);
    updateSide();
  }

  function rowsOf(pane: number, indices: Uint32Array): number[] {
    const src = sources[pane];
    if (!src) return [];
    const layer = currentLayer(model);
    const out: number[] = [];
    for (const i of indices) {
      const hit = locate(src, i);
      if (hit && hit.set.layer === layer) out.push(hit.row);
    }
    return out;
  }

  function selectFromView(pane: number, indices: Uint32Array, how: "replace" | "add" | "remove"): void {
    const rows = rowsOf(pane, indices);
    if (how === "replace") return setSelection(rows);
    const cur = new Set<number>(selIds);
    for (const r of rows) how === "add" ? cur.add(r) : cur.delete(r);
    setSelection([...cur]);
  }

  function toggleRow(row: number, shift: boolean): void {
    if (!shift) return setSelection(selIds.length === 1 && selIds[0] === row ? [] : [row]);
    const cur = new Set<number>(selIds);
    cur.has(row) ? cur.delete(row) : cur.add(row);
    setSelection([...cur]);
  }

  function clickFromView(pane: number, index: number, shift: boolean): void {
    const src = sources[pane];
    const hit = src ? locate(src, index) : null;
    if (!hit || hit.set.partial) return;
    if (shift && hit.set.layer === currentLayer(model)) return toggleRow(hit.row, true);
    setTraits(model, { probe_image: hit.set.image[hit.local] });
  }

  let camTimer: ReturnType<typeof setTimeout> | undefined;
  let lastCamSent = "";
  let stripTimer: ReturnType<typeof setTimeout> | undefined;
  function cameraMoved(c: CameraState): void {
    local.camera = c;
    clearTimeout(stripTimer); // the strip follows the camera once a drag or wheel stops
    stripTimer = setTimeout(() => strip.redraw(emb.camera()), 150);
    clearTimeout(camTimer);
    camTimer = setTimeout(() => {
      const t = toTrait(c);
      lastCamSent = JSON.stringify(t);
      setTraits(model, { camera: t });
    }, 400);
  }

  let playTimer: ReturnType<typeof setInterval> | undefined;
  function togglePlay(): void {
    local.playing = !local.playing;
    clearInterval(playTimer);
    if (local.playing) {
      playTimer = setInterval(() => {
        const eps = epochsFor(model);
        if (eps.length < 2) return togglePlay();
        const i = eps.indexOf(model.get("epoch"));
        setTraits(model, { epoch: eps[(i + 1) % eps.length] });
      }, PLAY_MS);
    }
    root.dataset.playing = String(local.playing);
    updateTimeline();
  }

  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") setSelection([]);
    else if (e.key === "r" && !e.ctrlKey && !e.metaKey) emb.reset();
    else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const eps = epochsFor(model);
      const i = eps.indexOf(model.get("epoch")) + (e.key === "ArrowRight" ? 1 : -1);
      if (i >= 0 && i < eps.length) setTraits(model, { epoch: eps[i] });
    } else return;
    e.preventDefault();
  };
  root.addEventListener("keydown", onKey);
  cleanups.push(() => root.removeEventListener("keydown", onKey));

  // ---- trait listeners ---------------------------------------------------------------------------
  const all = () => {
    toolbar.update();
    updateTimeline();
    void refresh();
  };
  for (const name of ["model", "condition", "epoch", "layer", "feature_kind", "threshold", "mode", "compare", "compare_with", "catalog", "ellipsoids"]) on(`change:${name}`, all);
  on("change:summary", () => {
    updateTimeline();
    updateStrip();
    updateSide();
  });
  on("change:selection", () => {
    selIds = decodeIds(model.get("selection"));
    toolbar.update();
    if (mainPoints) rebuildFlags(mainPoints.n);
    void refresh();
  });
  on("change:probe_image", () => (model.get("mode") === "forward" ? void refresh() : updateSide()));
  on("change:hover", () => {
    const row = model.get("hover");
    if (local.hover && local.hover.id === row) return;
    if (model.get("mode") !== "forward") emb.setHover(row >= 0 ? sources.map(() => row) : []);
    updateSide();
  });
  on("change:camera", () => {
    const t = model.get("camera");
    if (JSON.stringify(t) === lastCamSent) return;
    emb.setCamera(fromTrait(t, defaultCamera(mainPoints?.radius ?? 1, defaultAngles())));
    strip.redraw(emb.camera());
  });
  on("change:renderer", () => emb.setRenderer(model.get("renderer")));
  on("change:height", () => (root.style.height = `${model.get("height")}px`));

  // snapshots: Python asks, the page answers with the main view as PNG bytes
  const onMsg = (content: { kind?: string; id?: string }) => {
    if (!content || content.kind !== "pv:snapshot") return;
    const title = `${paneTitle(mainKey(model), "")} · τ=${model.get("threshold").toFixed(2)}`;
    const items = legend.items().slice(0, 20).map((it) => ({ color: it.color, label: it.label }));
    emb.snapshot(items, title).then(
      (bytes) => model.send({ kind: "pv:snapshot-reply", id: content.id }, undefined, [bytes.buffer as ArrayBuffer]),
      (e) => model.send({ kind: "pv:snapshot-reply", id: content.id, error: String(e) }),
    );
  };
  model.on("msg:custom", onMsg);
  cleanups.push(() => model.off("msg:custom", onMsg));

  cleanups.push(
    watchTheme(() => {
      theme = readTheme(root);
      root.classList.toggle("pv-dark", theme.dark);
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
      const src = sources[pane];
      if (!pr || !src) return null;
      const r = emb.el.getBoundingClientRect();
      const xy: number[] = [];
      for (let i = 0; i < pr.xy.length; i += 2) xy.push(pr.xy[i] + pr.offsetX + r.left, pr.xy[i + 1] + r.top);
      return { xy, label: Array.from(src.data.cidx), glyph: Array.from(src.data.glyph) };
    },
    frameMs: () => emb.lastFrameMs(),
    frames: (since = 0) => emb.frames().filter((f) => f[0] >= since),
    renderNow: () => emb.renderNow(),
    cache: () => ({ entries: shared.cache.size, bytes: shared.cache.totalBytes, hits: shared.cache.hits, misses: shared.cache.misses }),
  };

  // ---- first paint ---------------------------------------------------------------------------------
  root.style.height = `${model.get("height")}px`;
  root.classList.toggle("pv-dark", theme.dark);
  if (model.get("renderer") !== "auto") emb.setRenderer(model.get("renderer"));
  const cam0 = model.get("camera");
  if (cam0 && cam0.distance !== undefined) emb.setCamera(fromTrait(cam0, defaultCamera(1, defaultAngles())));
  const firstKey = data.takeFirstView(model.get("first_view"));
  all();
  let firstSent = false;
  const atlasLater = () =>
    data.atlas().then(
      (a) => {
        atlas = a;
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
    token++;
    clearTimeout(hoverTimer);
    clearTimeout(camTimer);
    clearInterval(playTimer);
    clearTimeout(stripTimer);
    clearTimeout(afterTimer);
    cancelAnimationFrame(afterRaf);
    cleanups.forEach((f) => f());
    [toolbar, emb, image, stats, strip, timeline, tooltip, legend].forEach((v) => v.destroy());
    local.destroy();
    root.remove();
  };
}
