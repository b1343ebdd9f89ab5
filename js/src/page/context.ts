// What the page's modules share: the model, the per-model services, the views of the layout and
// the little state the page keeps (the theme, what is drawn, the atlas; nothing Python cannot read
// besides the tool, hover position and camera-in-motion in `local`).
import type { Cache } from "../cache";
import type { Atlas, Data, PointSet } from "../data";
import type { Theme } from "../lib/theme";
import type { Model } from "../model";
import type { Rpc } from "../rpc";
import type { Local } from "../state";
import type { EmbeddingView, PaneSource } from "../views/embedding";
import type { ImageView } from "../views/image_view";
import type { LayerStripView } from "../views/layer_strip";
import type { LegendView, StatsView } from "../views/legend";
import type { TimelineView } from "../views/timeline";
import type { ToolbarView } from "../views/toolbar";
import type { TooltipView } from "../views/tooltip";
import type { Selection } from "./selection";

/** Per-model services, shared by every view of one widget (created in `initialize`). */
export interface Shared {
  rpc: Rpc;
  cache: Cache;
  data: Data;
}

export interface Views {
  root: HTMLElement;
  status: HTMLElement;
  toolbar: ToolbarView;
  emb: EmbeddingView;
  legend: LegendView;
  image: ImageView;
  stats: StatsView;
  strip: LayerStripView;
  timeline: TimelineView;
  tooltip: TooltipView;
}

export interface PageState {
  theme: Theme;
  local: Local;
  /** what each pane of the main view draws */
  sources: (PaneSource | null)[];
  /** the point set of the main key (the side views read it) */
  mainPoints: PointSet | null;
  atlas: Atlas | null;
}

export interface Page {
  model: Model;
  shared: Shared;
  views: Views;
  state: PageState;
  selection: Selection;
}

export function classNames(model: Model): string[] {
  return model.get("catalog")?.class_names ?? [];
}

export function classPalette(model: Model): string[] {
  return model.get("catalog")?.palette ?? [];
}
