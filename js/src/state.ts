// Derived, read-only view of the traits for the views, plus the ephemeral page state that stays
// in JS (tool, hover position, camera between syncs). Anything a user can act on is a trait.
import { keyString, SAMPLE } from "./data";
import type { CameraState } from "./lib/camera";
import type { Model } from "./model";

export type Tool = "orbit" | "pan" | "lasso" | "box";

export interface Hover {
  pane: number;
  /** row id in the current layer (or sample index); -1 none */
  id: number;
  /** index in the pane's drawn arrays (differs from id in forward mode) */
  index: number;
  layer: string;
  key: string;
  x: number;
  y: number;
}

type Listener = () => void;

export class Local {
  tool: Tool = "orbit";
  camera: CameraState | null = null;
  hover: Hover | null = null;
  playing = false;
  private listeners = new Map<string, Set<Listener>>();

  on(name: string, cb: Listener): () => void {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name)!.add(cb);
    return () => this.listeners.get(name)?.delete(cb);
  }

  emit(name: string): void {
    this.listeners.get(name)?.forEach((cb) => cb());
  }

  destroy(): void {
    this.listeners.clear();
  }
}

/** The layer name a key uses for the current feature kind. */
export function currentLayer(model: Model): string {
  return model.get("feature_kind") === "samples" ? SAMPLE : model.get("layer");
}

export function mainKey(model: Model): string {
  return keyString(model.get("model"), model.get("condition"), model.get("epoch"), currentLayer(model));
}

/** The right-hand key in compare mode, or null. */
export function compareKey(model: Model): string | null {
  const what = model.get("compare");
  const other = model.get("compare_with");
  if (!what || other === "") return null;
  const m = model.get("model"),
    c = model.get("condition"),
    e = model.get("epoch"),
    l = currentLayer(model);
  if (what === "condition") return keyString(m, other, e, l);
  if (what === "model") return keyString(other, c, e, l);
  if (what === "epoch") return keyString(m, c, Number(other), l);
  return null;
}

export function paneTitle(key: string, what: string): string {
  const [m, c, e, ...l] = key.split("|");
  const layer = l.join("|");
  const where = layer === SAMPLE ? "samples" : layer;
  if (what === "condition") return `${c}`;
  if (what === "model") return `${m}`;
  if (what === "epoch") return `epoch ${e}`;
  return `${where} · epoch ${e} · ${c}${m !== "main" ? ` · ${m}` : ""}`;
}

/** Epochs with an embedding for the current (model, condition, layer). */
export function epochsFor(model: Model): number[] {
  const cat = model.get("catalog");
  if (!cat?.entries) return [];
  const m = model.get("model"),
    c = model.get("condition"),
    l = currentLayer(model);
  const rec = l === SAMPLE ? "SampleEmbedding" : "RegionEmbedding";
  const out: number[] = [];
  for (const [key, kinds] of Object.entries(cat.entries)) {
    const [km, kc, ke, ...kl] = key.split("|");
    if (km === m && kc === c && kl.join("|") === l && rec in kinds) out.push(Number(ke));
  }
  return out.sort((a, b) => a - b);
}

/** Region layers that have an embedding for the current (model, condition). */
export function embeddedLayers(model: Model): string[] {
  const cat = model.get("catalog");
  if (!cat?.entries) return [];
  const m = model.get("model"),
    c = model.get("condition");
  const have = new Set<string>();
  for (const [key, kinds] of Object.entries(cat.entries)) {
    const [km, kc, , ...kl] = key.split("|");
    if (km === m && kc === c && "RegionEmbedding" in kinds) have.add(kl.join("|"));
  }
  return (cat.layers ?? []).filter((l) => have.has(l));
}

export function hasSamples(model: Model): boolean {
  const cat = model.get("catalog");
  if (!cat?.entries) return false;
  return Object.entries(cat.entries).some(([k, kinds]) => k.endsWith(`|${SAMPLE}`) && "SampleEmbedding" in kinds);
}
