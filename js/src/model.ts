// One place that mirrors every Python trait of PatternViz (patternviz_widget/widget.py).
// Trait names are snake_case on both sides.

export interface WireArray {
  dtype: string;
  shape: number[];
  buffer: DataView | ArrayBuffer | Uint8Array;
}

export interface KpRow {
  epochs: number[];
  total: (number | null)[];
  reliable: (number | null)[];
  r_reliable: (number | null)[];
  /** why the counts are empty by construction (posterior near uniform, μ_c coinciding), per epoch */
  warning?: (string | null)[];
}

export interface Summary {
  model?: string;
  condition?: string;
  threshold?: number;
  layers: Record<string, KpRow>;
  error?: string;
}

export interface Catalog {
  models: string[];
  conditions: string[];
  epochs: number[];
  layers: string[];
  class_names: string[];
  entries: Record<string, Record<string, number>>;
  palette: string[];
  layer_colors: string[];
  glyphs: Record<string, { code: number; label: string }>;
  grid_shapes: Record<string, [number, number]>;
  num_images: number;
  rev: Record<string, number>;
  model_name: string;
  radius?: Record<string, number>;
  /** per model, the data-chosen default viewing angles (patternviz_widget/results/camera.py) */
  cameras?: Record<string, { azimuth: number; elevation: number }>;
}

export interface CameraTrait {
  azimuth?: number;
  elevation?: number;
  distance?: number;
  target?: [number, number, number];
}

export interface Traits {
  model: string;
  condition: string;
  epoch: number;
  layer: string;
  feature_kind: "regions" | "samples";
  threshold: number;
  mode: "embedding" | "forward";
  ellipsoids: boolean;
  compare: "" | "condition" | "model" | "epoch";
  compare_with: string;
  selection: DataView | ArrayBuffer | Uint8Array | null;
  first_view: DataView | ArrayBuffer | Uint8Array | null;
  hover: number;
  probe_image: number;
  renderer: "auto" | "webgl" | "webgl-cpu" | "canvas2d";
  camera: CameraTrait;
  height: number;
  catalog: Catalog;
  summary: Summary;
  backend: string;
}

type Callback = (...args: never[]) => void;

/** The subset of anywidget's AnyModel we use, typed by trait. */
export interface Model {
  get<K extends keyof Traits>(name: K): Traits[K];
  set<K extends keyof Traits>(name: K, value: Traits[K]): void;
  save_changes(): void;
  on(event: string, cb: Callback): void;
  off(event?: string | null, cb?: Callback | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

/** Set several traits and sync them in one message. */
export function setTraits(model: Model, values: Partial<Traits>): void {
  for (const [k, v] of Object.entries(values)) model.set(k as keyof Traits, v as never);
  model.save_changes();
}
