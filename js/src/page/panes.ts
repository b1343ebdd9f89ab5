// Data -> main view: which point sets the panes draw (one key, a compare pair, or the forward
// construction), framing on a new layer, and what follows a frame (side views, thumbnails,
// prefetch of the neighbouring epochs and layers, the region layout).
import { keyString, SAMPLE, type PointSet } from "../data";
import type { PaneData } from "../gl/types";
import { classColor } from "../lib/colors";
import { compareKey, currentLayer, embeddedLayers, epochsFor, hasSamples, mainKey, paneTitle } from "../state";
import { buildForward } from "../views/forward";
import { classItems } from "../views/legend";
import { classNames, classPalette, type Page } from "./context";
import type { SideViews } from "./side";

export interface Panes {
  /** Draw what the traits say (the latest call wins). */
  refresh(): Promise<void>;
  /** Drop what a refresh still in flight would do. */
  invalidate(): void;
  destroy(): void;
}

export function createPanes(page: Page, side: SideViews): Panes {
  const { model, views, state, selection } = page;
  const { data } = page.shared;
  const { emb, legend, status } = views;
  let token = 0;

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
    if (flags && selection.flags.length !== p.n) selection.rebuildFlags(p.n);
    const names = classNames(model);
    const palette = classPalette(model);
    return {
      title,
      key: p.key,
      n: p.n,
      xyz: p.xyz,
      cidx: p.label,
      glyph: p.glyph,
      flag: selection.flags,
      flagVersion: selection.flagVersion,
      palette,
      mu: p.mu,
      muLabels: names,
      muColors: names.map((_, c) => classColor(palette, c)),
      ellipsoids: model.get("ellipsoids") ? p.ellipsoids : null,
      path: null,
      radius: frameRadius(p.layer, p.radius),
      hasSelection: selection.size > 0,
      packed: p.packed,
    };
  }

  function showStatus(text: string, kind: "" | "loading" | "error" = ""): void {
    if (status.textContent === text && (status.dataset.kind ?? "") === kind && status.hidden === !text) return;
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
      side.updateSide();
      return;
    }
    try {
      if (model.get("mode") === "forward" && model.get("feature_kind") === "regions") {
        const layers = embeddedLayers(model);
        const keys = layers.map((l) => keyString(model.get("model"), model.get("condition"), model.get("epoch"), l));
        if (hasSamples(model))
          keys.push(keyString(model.get("model"), model.get("condition"), model.get("epoch"), SAMPLE));
        const have = keys.filter((k) => data.exists(k));
        const sets = have.map((k) => data.peek(k, tau));
        if (sets.some((s) => !s)) showStatus("Loading every layer …", "loading");
        const all = await Promise.all(
          have.map((k, i) =>
            (sets[i] ? Promise.resolve(sets[i]!) : data.points(k, tau)).then((p) => data.attachLayout(p)),
          ),
        );
        if (my !== token) return;
        state.mainPoints = all.find((p) => p.layer === currentLayer(model)) ?? all[0] ?? null;
        const images = forwardImages();
        const src = buildForward(
          all,
          images,
          model.get("catalog")?.layer_colors ?? [],
          classNames(model),
          classPalette(model),
        );
        src.data.radius = Math.max(...all.map((p) => frameRadius(p.layer, p.radius)));
        state.sources = [src];
        frameIfNewLayer(src.data.radius);
        emb.setSources(state.sources, [
          `forward construction · ${images.length === 1 ? `image ${images[0]}` : `${images.length} images`} · epoch ${model.get("epoch")}`,
        ]);
        legend.update(
          all.map((p, i) => ({
            color: src.data.palette[i % src.data.palette.length],
            label: p.layer === SAMPLE ? "sample feature g" : p.layer,
          })),
          "layers (low → high)",
          true,
        );
      } else {
        const k1 = mainKey(model);
        const k2 = compareKey(model);
        const keys = [k1, ...(k2 ? [k2] : [])];
        const cached = keys.map((k) => data.peek(k, tau) ?? data.peekFirst(k, tau));
        if (cached.some((c) => !c)) showStatus(`Loading ${paneTitle(k1, "")} …`, "loading");
        const pts = await Promise.all(
          keys.map(
            (k, i) =>
              cached[i] ??
              (data.exists(k)
                ? data.points(k, tau)
                : Promise.reject(new Error(`nothing stored for ${paneTitle(k, "")} yet`))),
          ),
        );
        if (my !== token) return;
        state.mainPoints = pts[0];
        const what = model.get("compare");
        state.sources = pts.map((p) => ({ data: paneData(p, ""), sets: [p], offsets: [0] }));
        frameIfNewLayer(state.sources[0]?.data.radius ?? 1);
        emb.setSources(state.sources, k2 ? keys.map((k) => paneTitle(k, what)) : []);
        legend.update(classItems(classNames(model), classPalette(model)), "classes", true);
      }
      showStatus("");
      side.updateStrip(false); // the strip's tiles now, so the plot keeps its size; thumbnails later
      // the frame first; side views, thumbnails, prefetch and the layout once it is on screen
      afterFrame(() => {
        if (my !== token) return;
        const mainPoints = state.mainPoints;
        if (mainPoints?.partial) {
          // drawn from the first view: the tooltip and side columns follow, then the full set
          data.dropFirst();
          data.points(mainPoints.key, tau).then(
            () => my === token && void refresh(),
            () => undefined,
          );
          return;
        }
        side.updateSide();
        side.updateStrip();
        prefetch();
        if (mainPoints && !mainPoints.layout) {
          const mp = mainPoints;
          data.attachLayout(mp).then(
            () => mp === state.mainPoints && side.updateSide(),
            () => undefined,
          );
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
    const mainPoints = state.mainPoints;
    if (selection.size && mainPoints && model.get("feature_kind") === "regions") {
      const seen = new Set<number>();
      for (const id of selection.ids)
        if (id < mainPoints.n && !mainPoints.ids && !mainPoints.partial) seen.add(mainPoints.image[id]);
      if (seen.size) return [...seen].slice(0, 64);
    }
    return [model.get("probe_image")];
  }

  function prefetch(): void {
    const tau = model.get("threshold");
    const eps = epochsFor(model);
    const i = eps.indexOf(model.get("epoch"));
    const m = model.get("model"),
      c = model.get("condition"),
      l = currentLayer(model);
    const next = [eps[i + 1], eps[i - 1], state.local.playing ? eps[i + 2] : undefined];
    const mode = model.get("mode");
    // neighbouring epochs and layers go to the GPU as they land: a scrub is a bind + one draw
    const toGpu = (key: string) =>
      data.prefetched(key, tau)?.then(
        (p) =>
          mode === "embedding" &&
          emb.preload({ ...paneData(p, "", false), flag: new Uint8Array(0), hasSelection: false }),
        () => undefined,
      );
    for (const e of next) if (e !== undefined) toGpu(keyString(m, c, e, l));
    const layers = embeddedLayers(model);
    const j = layers.indexOf(l);
    for (const n of [layers[j + 1], layers[j - 1]]) if (n) toGpu(keyString(m, c, model.get("epoch"), n));
    const k2 = compareKey(model);
    if (k2) data.prefetch(k2, tau);
  }

  return {
    refresh,
    invalidate() {
      token++;
    },
    destroy() {
      token++;
      clearTimeout(afterTimer);
      cancelAnimationFrame(afterRaf);
    },
  };
}
