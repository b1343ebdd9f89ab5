// The views around the main plot: image view + stats (side column), the layer strip and the
// epoch timeline, each redrawn from the traits and what the main view shows.
import { keyString, SAMPLE } from "../data";
import { currentLayer, embeddedLayers, epochsFor, hasSamples } from "../state";
import type { StripTile } from "../views/layer_strip";
import { classNames, classPalette, type Page } from "./context";

/** Points per layer-strip thumbnail. */
const THUMB_POINTS = 2500;

export interface SideViews {
  updateSide(): void;
  /** `fetch` false: lay the tiles out (the page keeps its size) without asking for thumbnails or
   * drawing them (they follow once the frame is on screen). */
  updateStrip(fetch?: boolean): void;
  updateTimeline(): void;
}

export function createSideViews(page: Page): SideViews {
  const { model, views, state, selection } = page;
  const { data } = page.shared;

  function updateSide(): void {
    const layer = currentLayer(model);
    const mainPoints = state.mainPoints;
    views.image.update({
      image: model.get("probe_image"),
      numImages: model.get("catalog")?.num_images ?? 0,
      atlas: state.atlas,
      points: mainPoints && mainPoints.layer === layer && !mainPoints.ids && !mainPoints.partial ? mainPoints : null,
      selected: selection.flags,
      hoverRow: state.local.hover?.id ?? model.get("hover"),
      classNames: classNames(model),
      palette: classPalette(model),
      theme: state.theme,
      samples: layer === SAMPLE,
    });
    const row = model.get("summary")?.layers?.[layer];
    const k = row ? row.epochs.indexOf(model.get("epoch")) : -1;
    const fmt = (v: number | null | undefined, pct = false) =>
      v === null || v === undefined ? "–" : pct ? `${(v * 100).toFixed(1)} %` : v.toFixed(2);
    const lines: [string, string][] = [];
    if (layer !== SAMPLE) {
      lines.push(
        ["KP / image", fmt(k >= 0 ? row!.total[k] : null)],
        ["reliable / image", fmt(k >= 0 ? row!.reliable[k] : null)],
        ["r_reliable", fmt(k >= 0 ? row!.r_reliable[k] : null, true)],
      );
      const warning = k >= 0 ? row!.warning?.[k] : null;
      if (warning) lines.push(["note", warning]);
    }
    if (mainPoints) lines.push(["points", mainPoints.n.toLocaleString()]);
    lines.push(["selected", selection.size.toLocaleString()]);
    views.stats.update(lines, `τ = ${model.get("threshold").toFixed(2)} · ${views.emb.backendKind() || "…"}`);
  }

  function updateStrip(fetch = true): void {
    const tau = model.get("threshold");
    const tiles: StripTile[] = [];
    const m = model.get("model"),
      c = model.get("condition"),
      e = model.get("epoch");
    const summary = model.get("summary")?.layers ?? {};
    const ids = [...(hasSamples(model) ? [SAMPLE] : []), ...embeddedLayers(model)];
    for (const id of ids) {
      const key = keyString(m, c, e, id);
      const exists = data.exists(key);
      const pts = exists ? (data.peek(key, tau, THUMB_POINTS) ?? null) : null;
      if (exists && !pts && fetch)
        data.points(key, tau, THUMB_POINTS).then(
          () => updateStrip(),
          () => undefined,
        );
      const row = summary[id];
      const k = row ? row.epochs.indexOf(e) : -1;
      tiles.push({
        id,
        label: id === SAMPLE ? "samples" : id,
        points: pts,
        kp: k >= 0 ? row.total[k] : null,
        warning: k >= 0 ? (row.warning?.[k] ?? null) : null,
        active: id === currentLayer(model),
        error: exists ? undefined : "not captured",
      });
    }
    views.strip.update(tiles, views.emb.camera(), state.theme, classPalette(model), fetch);
  }

  function updateTimeline(): void {
    const row = model.get("summary")?.layers?.[currentLayer(model)] ?? null;
    views.timeline.update(epochsFor(model), model.get("epoch"), row, state.local.playing, state.theme);
  }

  return { updateSide, updateStrip, updateTimeline };
}
