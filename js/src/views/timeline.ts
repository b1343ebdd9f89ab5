// Epoch timeline: play/pause, a scrubber over the tracked epochs, and a sparkline of knowledge
// points per image per epoch for the current layer (total and reliable). Click the sparkline = seek.
import { rgbCss } from "../lib/colors";
import { button, h, icon, svg } from "../lib/dom";
import type { Theme } from "../lib/theme";
import type { KpRow } from "../model";

export interface TimelineView {
  el: HTMLElement;
  update(epochs: number[], epoch: number, row: KpRow | null, playing: boolean, theme: Theme): void;
  destroy(): void;
}

export function createTimeline(
  parent: HTMLElement,
  cb: { seek(epoch: number): void; togglePlay(): void },
): TimelineView {
  const el = h("div", { cls: "pv-timeline", attrs: { "data-pv": "timeline" } });
  parent.appendChild(el);
  const play = button({ icon: "play", title: "Play through the epochs", pv: "play" }, () => cb.togglePlay());
  const range = h("input", {
    cls: "pv-range pv-scrub",
    title: "Epoch",
    attrs: { type: "range", min: 0, max: 0, step: 1, "data-pv": "scrubber" },
  }) as HTMLInputElement;
  const label = h("div", { cls: "pv-epoch", attrs: { "data-pv": "epoch-label" } });
  const spark = svg("svg", { class: "pv-spark", "data-pv": "sparkline", preserveAspectRatio: "none" });
  const legend = h("div", { cls: "pv-spark-legend" });
  el.append(play, label, range, spark, legend);
  let epochs: number[] = [];

  range.addEventListener("input", () => {
    const e = epochs[Number(range.value)];
    if (e !== undefined) cb.seek(e);
  });
  spark.addEventListener("click", (ev) => {
    const r = spark.getBoundingClientRect();
    if (!epochs.length || r.width <= 0) return;
    const t = (ev.clientX - r.left) / r.width;
    cb.seek(epochs[Math.max(0, Math.min(epochs.length - 1, Math.round(t * (epochs.length - 1))))]);
  });

  return {
    el,
    update(eps, epoch, row, playing, theme) {
      epochs = eps;
      const idx = Math.max(0, eps.indexOf(epoch));
      range.max = String(Math.max(0, eps.length - 1));
      if (document.activeElement !== range) range.value = String(idx);
      range.disabled = eps.length < 2;
      play.disabled = eps.length < 2;
      play.replaceChildren(icon(playing ? "pause" : "play"));
      play.title = playing ? "Pause" : "Play through the epochs";
      play.setAttribute("aria-pressed", String(playing));
      label.textContent = eps.length > 1 ? `epoch ${epoch}  (${idx + 1}/${eps.length})` : `epoch ${epoch}`;
      el.classList.toggle("pv-single", eps.length < 2);
      // sparkline
      const W = 300,
        H = 40,
        pad = 3;
      spark.setAttribute("viewBox", `0 0 ${W} ${H}`);
      spark.replaceChildren();
      legend.replaceChildren();
      if (!row || row.epochs.length === 0) {
        legend.textContent = eps.length < 2 ? "one epoch captured — track training with study.tracker()" : "";
        return;
      }
      const xs = row.epochs.map((e) => eps.indexOf(e));
      const vals = [...row.total, ...row.reliable].filter((v): v is number => v !== null);
      const top = Math.max(1e-6, ...vals);
      const X = (i: number) => pad + (eps.length > 1 ? (i / (eps.length - 1)) * (W - 2 * pad) : W / 2);
      const Y = (v: number) => H - pad - (v / top) * (H - 2 * pad);
      const path = (ys: (number | null)[]) =>
        ys
          .map((v, k) =>
            v === null || xs[k] < 0 ? "" : `${k === 0 ? "M" : "L"}${X(xs[k]).toFixed(1)} ${Y(v).toFixed(1)}`,
          )
          .join(" ");
      const accent = rgbCss(theme.accent);
      const good = "#59a14f";
      spark.appendChild(
        svg("path", {
          d: `${path(row.total)} L${X(xs[xs.length - 1]).toFixed(1)} ${H - pad} L${X(xs[0]).toFixed(1)} ${H - pad} Z`,
          fill: rgbCss(theme.accent, 0.12),
          stroke: "none",
        }),
      );
      spark.appendChild(
        svg("path", {
          d: path(row.total),
          fill: "none",
          stroke: accent,
          "stroke-width": 1.6,
          "vector-effect": "non-scaling-stroke",
        }),
      );
      spark.appendChild(
        svg("path", {
          d: path(row.reliable),
          fill: "none",
          stroke: good,
          "stroke-width": 1.4,
          "stroke-dasharray": "3 2",
          "vector-effect": "non-scaling-stroke",
        }),
      );
      spark.appendChild(
        svg("line", {
          x1: X(idx),
          x2: X(idx),
          y1: 0,
          y2: H,
          stroke: rgbCss(theme.foreground, 0.6),
          "stroke-width": 1,
          "vector-effect": "non-scaling-stroke",
          "data-pv": "spark-marker",
        }),
      );
      const k = row.epochs.indexOf(epoch);
      const cur = k >= 0 ? row.total[k] : null;
      const rel = k >= 0 ? row.reliable[k] : null;
      legend.append(
        h("span", {
          cls: "pv-key",
          text: `● ${cur === null ? "–" : cur.toFixed(1)} KP/img`,
          attrs: { style: `color:${accent}` },
        }),
        h("span", {
          cls: "pv-key",
          text: `┄ ${rel === null ? "–" : rel.toFixed(1)} reliable`,
          attrs: { style: `color:${good}` },
        }),
      );
    },
    destroy() {
      el.remove();
    },
  };
}
