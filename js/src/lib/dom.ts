// Tiny DOM helpers. Text goes through textContent only, never innerHTML (labels are data).

type Attrs = Record<string, string | number | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  opts: { cls?: string; text?: string; attrs?: Attrs; title?: string } = {},
  children: (Node | null | undefined)[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (opts.cls) el.className = opts.cls;
  if (opts.text !== undefined) el.textContent = opts.text;
  if (opts.title) el.title = opts.title;
  for (const [k, v] of Object.entries(opts.attrs ?? {})) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) el.appendChild(c);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  children: SVGElement[] = [],
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(c);
  return el;
}

const ICONS: Record<string, string> = {
  orbit: "M12 5a7 7 0 1 1-6.3 4M5.7 4v5h5",
  pan: "M12 3v18M3 12h18M12 3l-3 3M12 3l3 3M12 21l-3-3M12 21l3-3M3 12l3-3M3 12l3 3M21 12l-3-3M21 12l-3 3",
  lasso: "M5 11c0-3.5 3.5-6 8-6s7 2 7 5-3.5 5.5-8 5.5c-1.5 0-2.8-.2-4-.7M8 15l-2 5",
  box: "M4 4h16v16H4z",
  reset: "M4 12a8 8 0 1 0 3-6.2M4 4v5h5",
  play: "M7 5l12 7-12 7z",
  pause: "M7 5h4v14H7zM13 5h4v14h-4z",
  prev: "M15 5l-7 7 7 7",
  next: "M9 5l7 7-7 7",
  clear: "M6 6l12 12M18 6L6 18",
  camera: "M4 8h4l2-3h4l2 3h4v11H4zM12 11a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
};

export function icon(name: string): SVGSVGElement {
  const path = svg("path", {
    d: ICONS[name] ?? "",
    fill: name === "play" || name === "pause" ? "currentColor" : "none",
    stroke: "currentColor",
    "stroke-width": 1.8,
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
  });
  return svg("svg", { viewBox: "0 0 24 24", width: 16, height: 16, class: "pv-icon", "aria-hidden": "true" }, [path]);
}

/** A glyph swatch (the paper's shapes): 0 square, 1 circle, 2 triangle. */
export function glyphIcon(code: number, color: string, size = 12): SVGSVGElement {
  const s = size;
  let shape: SVGElement;
  if (code === 1) shape = svg("circle", { cx: s / 2, cy: s / 2, r: s * 0.42, fill: color, stroke: "rgba(0,0,0,.35)" });
  else if (code === 2)
    shape = svg("path", {
      d: `M${s / 2} ${s * 0.08}L${s * 0.94} ${s * 0.9}H${s * 0.06}Z`,
      fill: color,
      stroke: "rgba(0,0,0,.55)",
    });
  else shape = svg("rect", { x: s * 0.14, y: s * 0.14, width: s * 0.72, height: s * 0.72, fill: color, opacity: 0.6 });
  return svg("svg", { viewBox: `0 0 ${s} ${s}`, width: s, height: s, class: "pv-glyph" }, [shape]);
}

export function button(
  opts: { icon?: string; text?: string; title: string; pv: string; cls?: string },
  onClick: (e: MouseEvent) => void,
): HTMLButtonElement {
  const b = h("button", {
    cls: `pv-btn ${opts.cls ?? ""}`.trim(),
    title: opts.title,
    attrs: { "data-pv": opts.pv, type: "button", "aria-label": opts.title },
  });
  if (opts.icon) b.appendChild(icon(opts.icon));
  if (opts.text) b.appendChild(h("span", { text: opts.text }));
  b.addEventListener("click", onClick);
  return b;
}

export function select(pv: string, title: string, onChange: (value: string) => void): HTMLSelectElement {
  const s = h("select", { cls: "pv-select", title, attrs: { "data-pv": pv, "aria-label": title } });
  s.addEventListener("change", () => onChange(s.value));
  return s;
}

/** Replace the options of a <select> (textContent labels). */
export function setOptions(s: HTMLSelectElement, options: [string, string][], value: string): void {
  const sig = JSON.stringify(options);
  if (s.dataset.sig !== sig) {
    s.replaceChildren(...options.map(([v, label]) => h("option", { text: label, attrs: { value: v } })));
    s.dataset.sig = sig;
  }
  s.value = value;
}
