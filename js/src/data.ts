// Typed data the views draw, built from cached RPC replies (slice + layout + atlas).
import type { Cache } from "./cache";
import type { Model } from "./model";
import type { Reply } from "./rpc";
import { unpackLean } from "./gl/pack";
import { Assembler, bytesOf } from "./wire";

export const SAMPLE = "<sample>";

export interface Layout {
  layer: string;
  n: number;
  image: Uint32Array;
  grid: Int16Array;
  box: Float32Array;
  label: Uint8Array | Uint16Array;
  gridShape: [number, number];
}

export interface PointSet {
  key: string;
  layer: string;
  n: number;
  xyz: Float32Array;
  glyph: Uint8Array;
  discrimination: Float32Array;
  predicted: Uint8Array | Uint16Array;
  /** row ids in the layer when subsampled (thumbnails), else null (row = index) */
  ids: Uint32Array | null;
  /** true class of each point (via its image) */
  label: Uint8Array | Uint16Array;
  image: Uint32Array;
  mu: number[][] | null;
  ellipsoids: ({ centre: [number, number, number]; axes: [number, number, number][] } | null)[];
  radius: number;
  kpTotal: number;
  kpReliable: number;
  /** region geometry (grid, box) of the layer; null until fetched (not needed to draw) */
  layout: Layout | null;
  /** drawn from the first view alone: image, discrimination and predicted are not here yet */
  partial?: boolean;
  /** the points already in the GPU layout (the first view's lean array), see gl/pack.ts */
  packed?: PackedPoints;
}

/** Points in the 8-byte GPU layout of gl/pack.ts, with the largest class index they hold. */
export interface PackedPoints {
  q: Int16Array;
  scale: number;
  maxClass: number;
}

export interface Atlas {
  bitmap: ImageBitmap | HTMLImageElement;
  n: number;
  cols: number;
  tile: [number, number];
  inputSize: [number, number];
  labels: Uint16Array;
}

export function keyString(model: string, condition: string, epoch: number, layer: string): string {
  return `${model}|${condition}|${epoch}|${layer}`;
}

export function parseKey(key: string): { model: string; condition: string; epoch: number; layer: string } {
  const [model, condition, epoch, ...rest] = key.split("|");
  return { model, condition, epoch: Number(epoch), layer: rest.join("|") };
}

const built = new WeakMap<Reply, PointSet>();

export class Data {
  constructor(
    private cache: Cache,
    private model: Model,
  ) {}

  private rev(key: string): number {
    return this.model.get("catalog")?.rev?.[key] ?? 0;
  }

  sliceMsg(key: string, threshold: number, maxPoints?: number): Record<string, unknown> {
    const msg: Record<string, unknown> = { key, threshold: Math.round(threshold * 1e6) / 1e6, rev: this.rev(key) };
    if (maxPoints) msg.max_points = maxPoints;
    return msg;
  }

  layoutMsg(layer: string): Record<string, unknown> {
    return { layer, rev: JSON.stringify(this.model.get("catalog")?.grid_shapes?.[layer] ?? null) };
  }

  /** Whether a key has a stored embedding (so a request would succeed). */
  exists(key: string): boolean {
    const e = this.model.get("catalog")?.entries?.[key];
    if (!e) return false;
    return parseKey(key).layer === SAMPLE ? "SampleEmbedding" in e : "RegionEmbedding" in e;
  }

  async layout(layer: string): Promise<Layout> {
    const r = await this.cache.get("layout", this.layoutMsg(layer));
    return this.toLayout(r);
  }

  private toLayout(r: Reply): Layout {
    const a = r.arrays;
    return {
      layer: String(r.meta.layer),
      n: a.image.data.length,
      image: a.image.data as Uint32Array,
      grid: a.grid.data as Int16Array,
      box: a.box.data as Float32Array,
      label: a.label.data as Uint8Array | Uint16Array,
      gridShape: (r.meta.grid_shape ?? [1, 1]) as [number, number],
    };
  }

  /** Points of one key (resolves from the cache without a round trip when present). */
  async points(key: string, threshold: number, maxPoints?: number): Promise<PointSet> {
    const slice = await this.cache.get("slice", this.sliceMsg(key, threshold, maxPoints));
    return this.build(slice, key, parseKey(key).layer);
  }

  /** Synchronous: the points if the slice is cached, else undefined. */
  peek(key: string, threshold: number, maxPoints?: number): PointSet | undefined {
    const slice = this.cache.peek("slice", this.sliceMsg(key, threshold, maxPoints));
    return slice ? this.build(slice, key, parseKey(key).layer) : undefined;
  }

  /** Fetch the layer's region geometry into `ps.layout` (full point sets only). */
  async attachLayout(ps: PointSet): Promise<PointSet> {
    if (!ps.layout && !ps.ids) ps.layout = await this.layout(ps.layer);
    return ps;
  }

  /** Put the first view (the `first_view` trait, see patternviz_widget/widget/rpc.py) in the cache, so
   * the page draws it without a request; returns its key, or "" when there is none. */
  takeFirstView(value: DataView | ArrayBuffer | ArrayBufferView | null | undefined): string {
    if (!value) return "";
    const bytes = bytesOf(value);
    if (bytes.byteLength < 4) return "";
    try {
      const len = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
      const head = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + len)));
      if ((this.model.get("catalog")?.rev?.[head.key] ?? 0) !== head.rev) return "";
      const asm = new Assembler();
      const bufs = (head.buffers as [number, number][]).map(
        ([o, n]) => new DataView(bytes.buffer, bytes.byteOffset + o, n),
      );
      asm.add(head.content, bufs);
      const reply = { meta: asm.meta, arrays: asm.arrays() };
      if (reply.meta.lean)
        this.first = {
          id: JSON.stringify(this.sliceMsg(head.key, head.threshold)),
          points: this.fromLean(reply, String(head.key)),
        };
      else this.cache.put("slice", this.sliceMsg(head.key, head.threshold), reply);
      return String(head.key);
    } catch (e) {
      console.warn("patternviz: the first view could not be read; asking the kernel instead", e);
      return "";
    }
  }

  private first: { id: string; points: PointSet } | null = null;

  /** The first view's points (partial: drawing columns only) when it shows `key` at `threshold`. */
  peekFirst(key: string, threshold: number): PointSet | undefined {
    const f = this.first;
    return f && f.id === JSON.stringify(this.sliceMsg(key, threshold)) ? f.points : undefined;
  }

  dropFirst(): void {
    this.first = null;
  }

  /** A PointSet from the first view's lean layout (7 or 8 bytes a point, see gl/pack.ts unpackLean). */
  private fromLean(reply: Reply, key: string): PointSet {
    const a = reply.arrays;
    const scale = Number(reply.meta.scale) || 1;
    const { xyz, label, glyph, q, maxClass } = unpackLean(
      { p: a.p?.data as Int16Array, m: a.m?.data as Uint8Array, q: a.q?.data as Int16Array },
      scale,
    );
    const n = label.length;
    const meta = reply.meta;
    return {
      key,
      layer: parseKey(key).layer,
      n,
      xyz,
      glyph,
      discrimination: new Float32Array(0),
      predicted: new Uint8Array(0),
      ids: null,
      label,
      image: new Uint32Array(0),
      mu: (meta.mu as number[][] | null) ?? null,
      ellipsoids: (meta.ellipsoids as PointSet["ellipsoids"]) ?? [],
      radius: Number(meta.radius) || 1,
      kpTotal: Number(meta.kp_total) || 0,
      kpReliable: Number(meta.kp_reliable) || 0,
      layout: null,
      partial: true,
      packed: { q, scale, maxClass },
    };
  }

  prefetch(key: string, threshold: number, maxPoints?: number): void {
    if (!this.exists(key)) return;
    this.cache.prefetch("slice", this.sliceMsg(key, threshold, maxPoints));
  }

  /** Prefetch, and the points once they are here (undefined when the key has no embedding). */
  prefetched(key: string, threshold: number): Promise<PointSet> | undefined {
    if (!this.exists(key)) return undefined;
    const msg = this.sliceMsg(key, threshold);
    this.cache.prefetch("slice", msg);
    return this.cache.whenReady("slice", msg)?.then((r) => this.build(r, key, parseKey(key).layer));
  }

  private build(slice: Reply, key: string, layer: string): PointSet {
    const done = built.get(slice);
    if (done) return done;
    const a = slice.arrays;
    const lay = this.cache.peek("layout", this.layoutMsg(layer));
    const ps: PointSet = {
      key,
      layer,
      n: a.glyph.data.length,
      xyz: a.xyz.data as Float32Array,
      glyph: a.glyph.data as Uint8Array,
      discrimination: a.discrimination.data as Float32Array,
      predicted: a.predicted.data as Uint8Array,
      ids: (a.ids?.data as Uint32Array | undefined) ?? null,
      label: a.label.data as Uint8Array | Uint16Array,
      image: a.image.data as Uint32Array,
      mu: (slice.meta.mu as number[][] | null) ?? null,
      ellipsoids: (slice.meta.ellipsoids as PointSet["ellipsoids"]) ?? [],
      radius: Number(slice.meta.radius) || 1,
      kpTotal: Number(slice.meta.kp_total) || 0,
      kpReliable: Number(slice.meta.kp_reliable) || 0,
      layout: null,
    };
    if (lay && !ps.ids) ps.layout = this.toLayout(lay);
    built.set(slice, ps);
    return ps;
  }

  async atlas(): Promise<Atlas> {
    const r = await this.cache.get("atlas", { n: this.model.get("catalog")?.num_images ?? 0 });
    const png = r.arrays.png.data as Uint8Array;
    const blob = new Blob([png as unknown as BlobPart], { type: "image/png" });
    let bitmap: ImageBitmap | HTMLImageElement;
    if (typeof createImageBitmap === "function") bitmap = await createImageBitmap(blob);
    else {
      const img = new Image();
      img.src = URL.createObjectURL(blob);
      await img.decode();
      bitmap = img;
    }
    return {
      bitmap,
      n: Number(r.meta.n),
      cols: Number(r.meta.cols),
      tile: r.meta.tile as [number, number],
      inputSize: r.meta.input_size as [number, number],
      labels: r.arrays.labels.data as Uint16Array,
    };
  }
}

/** Draw the part of probe image `image` that `box` (input px) covers into a w×h area of ctx. */
export function drawPatch(
  ctx: CanvasRenderingContext2D,
  atlas: Atlas,
  image: number,
  box: ArrayLike<number> | null,
  x: number,
  y: number,
  w: number,
  h: number,
): void {
  const [th, tw] = atlas.tile;
  const col = image % atlas.cols,
    row = Math.floor(image / atlas.cols);
  let sx = col * tw,
    sy = row * th,
    sw = tw,
    sh = th;
  if (box) {
    const [ih, iw] = atlas.inputSize;
    const x0 = Math.max(0, Math.min(iw, box[0])),
      y0 = Math.max(0, Math.min(ih, box[1]));
    const x1 = Math.max(x0 + 1e-3, Math.min(iw, box[2])),
      y1 = Math.max(y0 + 1e-3, Math.min(ih, box[3]));
    sx += (x0 / iw) * tw;
    sy += (y0 / ih) * th;
    sw = ((x1 - x0) / iw) * tw;
    sh = ((y1 - y0) / ih) * th;
  }
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(atlas.bitmap, sx, sy, Math.max(sw, 0.5), Math.max(sh, 0.5), x, y, w, h);
}
