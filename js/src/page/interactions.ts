// What the user does in the page: hover (tooltip, twin highlight, the hover trait), selection
// from the plot and the image view, clicks, camera moves, play, keyboard shortcuts.
import { SAMPLE } from "../data";
import { toTrait, type CameraState } from "../lib/camera";
import { setTraits } from "../model";
import { currentLayer, epochsFor } from "../state";
import { locate } from "../views/embedding";
import { classNames, classPalette, type Page } from "./context";
import type { SideViews } from "./side";

const PLAY_MS = 900;

export interface Interactions {
  hoverFromView(pane: number, index: number, x: number, y: number): void;
  selectFromView(pane: number, indices: Uint32Array, how: "replace" | "add" | "remove"): void;
  clickFromView(pane: number, index: number, shift: boolean): void;
  /** hover from the image view's rows */
  hoverRow(row: number): void;
  toggleRow(row: number, shift: boolean): void;
  cameraMoved(c: CameraState): void;
  /** the camera trait value this page sent last (JSON), so its echo is not applied again */
  lastCameraSent(): string;
  togglePlay(): void;
  onKey(e: KeyboardEvent): void;
  destroy(): void;
}

export function createInteractions(page: Page, side: SideViews): Interactions {
  const { model, views, state, selection } = page;
  const { emb, tooltip, strip, root } = views;
  const local = state.local;

  let hoverTimer: ReturnType<typeof setTimeout> | undefined;
  const probCache = new Map<string, { probs: Float32Array; strength: number | null }>();

  function syncHover(row: number): void {
    clearTimeout(hoverTimer);
    hoverTimer = setTimeout(() => {
      if (model.get("hover") !== row) setTraits(model, { hover: row });
    }, 200);
  }

  function hoverFromView(pane: number, index: number, x: number, y: number): void {
    const sources = state.sources;
    const src = sources[pane];
    const hit = src && index >= 0 ? locate(src, index) : null;
    if (!hit || !src || hit.set.partial) {
      local.hover = null;
      emb.setHover([]);
      tooltip.hide();
      syncHover(-1);
      side.updateSide();
      return;
    }
    const twin = model.get("mode") === "forward" ? [index] : sources.map(() => index);
    local.hover = { pane, id: hit.row, index, layer: hit.set.layer, key: hit.set.key, x, y };
    emb.setHover(twin);
    syncHover(hit.set.layer === currentLayer(model) ? hit.row : -1);
    showTooltip();
    side.updateSide();
  }

  function showTooltip(): void {
    const hv = local.hover;
    if (!hv) return;
    const src = state.sources[hv.pane];
    const hit = src ? locate(src, hv.index) : null;
    if (!hit) return;
    const { set, row, local: li } = hit;
    const ck = `${set.key}|${row}|${model.get("threshold")}`;
    const got = probCache.get(ck);
    const sample = set.layer === SAMPLE;
    const lay = set.layout;
    const where = sample
      ? `image ${set.image[li]}`
      : lay
        ? `${set.layer} · image ${set.image[li]} · cell (${lay.grid[2 * row]}, ${lay.grid[2 * row + 1]})`
        : `${set.layer} · image ${set.image[li]}`;
    const er = emb.el.getBoundingClientRect();
    const rr = root.getBoundingClientRect();
    tooltip.show(
      {
        x: hv.x + er.left - rr.left,
        y: hv.y + er.top - rr.top,
        image: set.image[li],
        box: sample || !lay ? null : lay.box.subarray(4 * row, 4 * row + 4),
        title: where,
        label: set.label[li],
        glyph: set.glyph[li],
        layerName: set.layer,
        probs: got?.probs ?? null,
        strength: got?.strength ?? null,
      },
      state.atlas,
      classNames(model),
      classPalette(model),
      rr,
    );
    if (!got) {
      page.shared.rpc
        .request("point", { key: set.key, id: row, threshold: model.get("threshold") }, { timeout: 15_000 })
        .then((r) => {
          probCache.set(ck, {
            probs: r.arrays.posterior.data as Float32Array,
            strength: typeof r.meta.strength === "number" ? r.meta.strength : null,
          });
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
    emb.setHover(row >= 0 && !fwd ? state.sources.map(() => row) : []);
    syncHover(row);
    side.updateSide();
  }

  function rowsOf(pane: number, indices: Uint32Array): number[] {
    const src = state.sources[pane];
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
    if (how === "replace") return selection.set(rows);
    const cur = new Set<number>(selection.ids);
    for (const r of rows) {
      if (how === "add") cur.add(r);
      else cur.delete(r);
    }
    selection.set([...cur]);
  }

  function toggleRow(row: number, shift: boolean): void {
    const ids = selection.ids;
    if (!shift) return selection.set(ids.length === 1 && ids[0] === row ? [] : [row]);
    const cur = new Set<number>(ids);
    if (cur.has(row)) cur.delete(row);
    else cur.add(row);
    selection.set([...cur]);
  }

  function clickFromView(pane: number, index: number, shift: boolean): void {
    const src = state.sources[pane];
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
    side.updateTimeline();
  }

  function onKey(e: KeyboardEvent): void {
    if (e.key === "Escape") selection.set([]);
    else if (e.key === "r" && !e.ctrlKey && !e.metaKey) emb.reset();
    else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const eps = epochsFor(model);
      const i = eps.indexOf(model.get("epoch")) + (e.key === "ArrowRight" ? 1 : -1);
      if (i >= 0 && i < eps.length) setTraits(model, { epoch: eps[i] });
    } else return;
    e.preventDefault();
  }

  return {
    hoverFromView,
    selectFromView,
    clickFromView,
    hoverRow,
    toggleRow,
    cameraMoved,
    lastCameraSent: () => lastCamSent,
    togglePlay,
    onKey,
    destroy() {
      clearTimeout(hoverTimer);
      clearTimeout(camTimer);
      clearInterval(playTimer);
      clearTimeout(stripTimer);
    },
  };
}
