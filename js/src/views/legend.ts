// Legend (classes or layers + the paper's glyphs) and the side panel's numbers.
import { classColor } from "../lib/colors";
import { glyphIcon, h } from "../lib/dom";

export interface LegendItem {
  color: string;
  label: string;
}

export interface LegendView {
  el: HTMLElement;
  update(items: LegendItem[], heading: string, glyphs: boolean): void;
  items(): LegendItem[];
  destroy(): void;
}

const MAX_ITEMS = 20;

export function createLegend(parent: HTMLElement): LegendView {
  const el = h("div", { cls: "pv-legend", attrs: { "data-pv": "legend" } });
  parent.appendChild(el);
  const stop = (e: Event) => e.stopPropagation(); // the legend is not part of the canvas drag
  el.addEventListener("pointerdown", stop);
  el.addEventListener("wheel", stop);
  let current: LegendItem[] = [];
  let shown = "";
  return {
    el,
    update(items, heading, glyphs) {
      current = items;
      // the same legend again (a layer or epoch switch): leave the DOM as it is, so the page has no
      // style and layout to redo in the frame that draws the new points
      const what = `${heading}\n${glyphs}\n${items.length}\n${items
        .slice(0, MAX_ITEMS)
        .map((it) => `${it.color} ${it.label}`)
        .join("\n")}`;
      if (what === shown) return;
      shown = what;
      const list = h("div", { cls: "pv-legend-list" });
      items
        .slice(0, MAX_ITEMS)
        .forEach((it) =>
          list.append(
            h("div", { cls: "pv-legend-item" }, [
              h("span", { cls: "pv-swatch", attrs: { style: `background:${it.color}` } }),
              h("span", { cls: "pv-legend-name", text: it.label, title: it.label }),
            ]),
          ),
        );
      if (items.length > MAX_ITEMS)
        list.append(h("div", { cls: "pv-legend-item pv-muted", text: `+ ${items.length - MAX_ITEMS} more` }));
      const head = h("div", {
        cls: "pv-legend-head",
        text: `${heading}  ▾`,
        title: "Show / hide the legend",
        attrs: { "data-pv": "legend-toggle" },
      });
      head.addEventListener("click", () => el.classList.toggle("pv-collapsed"));
      const parts: HTMLElement[] = [head, list];
      if (glyphs) {
        const g = h("div", { cls: "pv-legend-glyphs" }, [
          h("div", { cls: "pv-legend-item" }, [glyphIcon(1, "#888"), h("span", { text: "reliable KP" })]),
          h("div", { cls: "pv-legend-item" }, [glyphIcon(2, "#888"), h("span", { text: "unreliable KP" })]),
          h("div", { cls: "pv-legend-item" }, [glyphIcon(0, "#888"), h("span", { text: "non-discriminative" })]),
        ]);
        parts.push(g);
      }
      el.replaceChildren(...parts);
    },
    items: () => current,
    destroy() {
      el.remove();
    },
  };
}

export function classItems(names: string[], palette: string[]): LegendItem[] {
  return names.map((n, c) => ({ color: classColor(palette, c), label: n }));
}

export interface StatsView {
  el: HTMLElement;
  update(lines: [string, string][], note: string): void;
  destroy(): void;
}

export function createStats(parent: HTMLElement): StatsView {
  const el = h("div", { cls: "pv-stats", attrs: { "data-pv": "stats" } });
  parent.appendChild(el);
  return {
    el,
    update(lines, note) {
      el.replaceChildren(
        ...lines.map(([k, v]) =>
          h("div", { cls: "pv-stat" }, [
            h("span", { cls: "pv-stat-k", text: k }),
            h("span", { cls: "pv-stat-v", text: v }),
          ]),
        ),
        ...(note ? [h("div", { cls: "pv-stat-note", text: note })] : []),
      );
    },
    destroy() {
      el.remove();
    },
  };
}
