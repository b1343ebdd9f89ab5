// Tooltip / inspector: the image patch a region sees (cut from the thumbnail atlas), its class
// probabilities and knowledge-point status. textContent only, never innerHTML.
import { classColor } from "../lib/colors";
import { glyphIcon, h } from "../lib/dom";
import { drawPatch, type Atlas } from "../data";

export interface TooltipContent {
  x: number;
  y: number;
  image: number;
  box: ArrayLike<number> | null;
  title: string;
  label: number;
  glyph: number;
  layerName: string;
  probs: Float32Array | null;
  strength: number | null;
}

export interface TooltipView {
  el: HTMLElement;
  show(c: TooltipContent, atlas: Atlas | null, classNames: string[], palette: string[], bounds: DOMRect): void;
  hide(): void;
  destroy(): void;
}

const STATUS = ["non-discriminative", "reliable knowledge point", "unreliable knowledge point"];

export function createTooltip(parent: HTMLElement): TooltipView {
  const el = h("div", { cls: "pv-tooltip", attrs: { "data-pv": "tooltip", role: "tooltip" } });
  el.hidden = true;
  parent.appendChild(el);
  const patch = h("canvas", { cls: "pv-tip-patch", attrs: { width: 72, height: 72, "data-pv": "tooltip-patch" } });
  const body = h("div", { cls: "pv-tip-body" });
  el.append(patch, body);

  return {
    el,
    show(c, atlas, names, palette, bounds) {
      const ctx = patch.getContext("2d");
      if (ctx) {
        ctx.clearRect(0, 0, 72, 72);
        if (atlas) drawPatch(ctx, atlas, c.image, c.box, 0, 0, 72, 72);
      }
      patch.dataset.filled = atlas ? "1" : "0";
      const color = classColor(palette, c.label);
      const rows: HTMLElement[] = [
        h("div", { cls: "pv-tip-title", text: c.title }),
        h("div", { cls: "pv-tip-line" }, [
          h("span", { cls: "pv-swatch", attrs: { style: `background:${color}` } }),
          h("span", { text: `true class: ${names[c.label] ?? c.label}` }),
        ]),
        h("div", { cls: "pv-tip-line", attrs: { "data-pv": "tooltip-status" } }, [
          glyphIcon(c.glyph, color),
          h("span", { text: STATUS[c.glyph] ?? "" }),
        ]),
      ];
      if (c.probs) {
        const order = Array.from(c.probs.keys())
          .sort((a, b) => c.probs![b] - c.probs![a])
          .slice(0, 4);
        const bars = h("div", { cls: "pv-tip-probs", attrs: { "data-pv": "tooltip-probs" } });
        for (const k of order) {
          const p = c.probs[k];
          const fill = h("div", {
            cls: "pv-bar-fill",
            attrs: { style: `width:${(p * 100).toFixed(1)}%;background:${classColor(palette, k)}` },
          });
          bars.append(
            h("div", { cls: "pv-bar-row" }, [
              h("span", { cls: "pv-bar-name", text: names[k] ?? String(k) }),
              h("div", { cls: "pv-bar" }, [fill]),
              h("span", { cls: "pv-bar-val", text: p.toFixed(2) }),
            ]),
          );
        }
        rows.push(bars);
      } else rows.push(h("div", { cls: "pv-tip-line pv-muted", text: "p(c | h) …" }));
      if (c.strength !== null)
        rows.push(h("div", { cls: "pv-tip-line pv-muted", text: `strength ‖h‖/mean = ${c.strength.toFixed(2)}` }));
      body.replaceChildren(...rows);
      el.hidden = false;
      const w = el.offsetWidth || 240,
        hh = el.offsetHeight || 120;
      let x = c.x + 16,
        y = c.y + 12;
      if (x + w > bounds.width) x = c.x - w - 12;
      if (y + hh > bounds.height) y = Math.max(4, bounds.height - hh - 4);
      el.style.transform = `translate(${Math.round(Math.max(4, x))}px, ${Math.round(y)}px)`;
    },
    hide() {
      el.hidden = true;
    },
    destroy() {
      el.remove();
    },
  };
}
