// The header: what is shown (model, condition, regions|samples, embedding|forward, compare),
// τ, the pointer tool, and view actions. Every control writes a trait; nothing is kept here.
import { button, h, select, setOptions } from "../lib/dom";
import { setTraits, type Model } from "../model";
import type { Tool } from "../state";
import { embeddedLayers, epochsFor, hasSamples } from "../state";

export interface ToolbarCallbacks {
  tool(): Tool;
  setTool(t: Tool): void;
  reset(): void;
  clearSelection(): void;
  selectionCount(): number;
}

export interface ToolbarView {
  el: HTMLElement;
  update(): void;
  destroy(): void;
}

function segmented(
  pv: string,
  items: [string, string, string][],
  onPick: (v: string) => void,
): { el: HTMLElement; set(v: string, enabled?: Record<string, boolean>): void } {
  const el = h("div", { cls: "pv-seg", attrs: { role: "group", "data-pv": pv } });
  const buttons = items.map(([value, label, title]) => {
    const b = h("button", {
      cls: "pv-seg-btn",
      text: label,
      title,
      attrs: { type: "button", "data-pv": `${pv}-${value}` },
    });
    b.addEventListener("click", () => onPick(value));
    el.appendChild(b);
    return [value, b] as const;
  });
  return {
    el,
    set(v, enabled = {}) {
      for (const [value, b] of buttons) {
        b.classList.toggle("pv-on", value === v);
        b.setAttribute("aria-pressed", String(value === v));
        b.disabled = enabled[value] === false;
      }
    },
  };
}

export function createToolbar(parent: HTMLElement, model: Model, cb: ToolbarCallbacks): ToolbarView {
  const el = h("div", { cls: "pv-header" });
  parent.appendChild(el);
  const brand = h("div", { cls: "pv-brand" }, [
    h("span", { cls: "pv-logo", text: "◆" }),
    h("span", { text: "PatternViz" }),
  ]);
  const crumb = h("div", { cls: "pv-crumb", attrs: { "data-pv": "crumb" } });

  const modelSel = select("model", "Model", (v) => setTraits(model, { model: v }));
  const condSel = select("condition", "Condition (clean, adversarial, …)", (v) => setTraits(model, { condition: v }));
  const kind = segmented(
    "kind",
    [
      ["regions", "Regions", "Regional features h = Λ f⁽ʳ⁾ of the layer"],
      ["samples", "Samples", "Sample features g = M f"],
    ],
    (v) => setTraits(model, { feature_kind: v as "regions" | "samples" }),
  );
  const mode = segmented(
    "mode",
    [
      ["embedding", "Embedding", "One layer, one epoch"],
      ["forward", "Forward", "The selected images' regions from every layer, coloured by layer"],
    ],
    (v) => setTraits(model, { mode: v as "embedding" | "forward" }),
  );
  const cmpSel = select("compare", "Compare with a second view (one shared camera)", (v) =>
    setTraits(model, { compare: v as "" }),
  );
  const cmpWith = select("compare-with", "Right-hand view", (v) => setTraits(model, { compare_with: v }));

  const tauVal = h("span", { cls: "pv-tau-val", attrs: { "data-pv": "tau-value" } });
  const tau = h("input", {
    cls: "pv-range",
    title: "Knowledge-point threshold τ: max_c p(c|h) ≥ τ",
    attrs: { type: "range", min: 0.05, max: 0.99, step: 0.01, "data-pv": "tau" },
  }) as HTMLInputElement;
  tau.addEventListener("input", () => (tauVal.textContent = Number(tau.value).toFixed(2)));
  tau.addEventListener("change", () => setTraits(model, { threshold: Number(tau.value) }));
  const tauBox = h("label", { cls: "pv-tau", title: tau.title }, [
    h("span", { cls: "pv-tau-label", text: "τ" }),
    tau,
    tauVal,
  ]);

  const tools = segmented(
    "tool",
    [
      ["orbit", "Orbit", "Drag to orbit (shift: pan)"],
      ["pan", "Pan", "Drag to pan (shift: orbit)"],
      ["lasso", "Lasso", "Draw around points to select (shift: add, alt: remove)"],
      ["box", "Box", "Drag a box to select (shift: add, alt: remove)"],
    ],
    (v) => {
      cb.setTool(v as Tool);
      update();
    },
  );
  const ell = h("label", { cls: "pv-check", title: "Per-class covariance ellipsoids" }, []);
  const ellBox = h("input", { attrs: { type: "checkbox", "data-pv": "ellipsoids" } }) as HTMLInputElement;
  ellBox.addEventListener("change", () => setTraits(model, { ellipsoids: ellBox.checked }));
  ell.append(ellBox, h("span", { text: "Ellipsoids" }));
  const reset = button({ icon: "reset", title: "Reset the camera (double-click the view)", pv: "reset" }, () =>
    cb.reset(),
  );
  const clear = button(
    { icon: "clear", text: "", title: "Clear the selection (Esc)", pv: "clear-selection", cls: "pv-clear" },
    () => cb.clearSelection(),
  );

  const row1 = h("div", { cls: "pv-row" }, [
    brand,
    crumb,
    h("div", { cls: "pv-spacer" }),
    modelSel,
    condSel,
    kind.el,
    mode.el,
  ]);
  const row2 = h("div", { cls: "pv-row pv-row2" }, [
    tools.el,
    tauBox,
    ell,
    cmpSel,
    cmpWith,
    h("div", { cls: "pv-spacer" }),
    clear,
    reset,
  ]);
  el.append(row1, row2);

  function update(): void {
    const cat = model.get("catalog");
    const models = cat?.models ?? [];
    setOptions(
      modelSel,
      models.map((m) => [m, `model: ${m}`]),
      model.get("model"),
    );
    modelSel.hidden = models.length < 2;
    const conds = cat?.conditions ?? [];
    setOptions(
      condSel,
      conds.map((c) => [c, c]),
      model.get("condition"),
    );
    condSel.hidden = conds.length < 2;
    const samples = hasSamples(model);
    kind.set(model.get("feature_kind"), { samples, regions: embeddedLayers(model).length > 0 });
    mode.set(model.get("mode"), { forward: model.get("feature_kind") === "regions" });
    const opts: [string, string][] = [["", "No compare"]];
    if (conds.length > 1) opts.push(["condition", "Compare conditions"]);
    if (models.length > 1) opts.push(["model", "Compare models"]);
    if (epochsFor(model).length > 1) opts.push(["epoch", "Compare epochs"]);
    setOptions(cmpSel, opts, model.get("compare"));
    cmpSel.hidden = opts.length < 2;
    const what = model.get("compare");
    let withOpts: [string, string][] = [];
    if (what === "condition") withOpts = conds.filter((c) => c !== model.get("condition")).map((c) => [c, `vs ${c}`]);
    if (what === "model") withOpts = models.filter((m) => m !== model.get("model")).map((m) => [m, `vs ${m}`]);
    if (what === "epoch")
      withOpts = epochsFor(model)
        .filter((e) => e !== model.get("epoch"))
        .map((e) => [String(e), `vs epoch ${e}`]);
    setOptions(cmpWith, withOpts, model.get("compare_with"));
    cmpWith.hidden = !what;
    const t = model.get("threshold");
    if (document.activeElement !== tau) tau.value = String(t);
    tauVal.textContent = t.toFixed(2);
    tools.set(cb.tool());
    ellBox.checked = model.get("ellipsoids");
    const n = cb.selectionCount();
    clear.hidden = n === 0;
    clear.querySelector("span")?.remove();
    if (n) clear.appendChild(h("span", { text: `${n.toLocaleString()} selected` }));
    const layer = model.get("feature_kind") === "samples" ? "samples" : model.get("layer");
    crumb.textContent = `${layer} · epoch ${model.get("epoch")} · ${model.get("condition")}${models.length > 1 ? ` · ${model.get("model")}` : ""}`;
  }

  update();
  return {
    el,
    update,
    destroy() {
      el.remove();
    },
  };
}
