// Decode {dtype, shape, buffer} and RPC chunks into typed-array VIEWS (byteOffset respected).
// Never Array.from: numbers stay in typed arrays from the socket to the GPU.

export type TypedArray = Float32Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

type Ctor = {
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): TypedArray;
  BYTES_PER_ELEMENT: number;
};

const CTORS: Record<string, Ctor> = {
  float32: Float32Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

export interface Decoded<T extends TypedArray = TypedArray> {
  data: T;
  shape: number[];
  dtype: string;
}

/** Bytes of a DataView / ArrayBuffer / typed array as a Uint8Array view (no copy). */
export function bytesOf(buf: DataView | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A typed-array view of `bytes` as `dtype`; copies only when the offset is misaligned. */
export function view(bytes: Uint8Array, dtype: string): TypedArray {
  const C = CTORS[dtype];
  if (!C) throw new Error(`patternviz: unsupported dtype ${dtype}`);
  const size = C.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new Error(`patternviz: ${bytes.byteLength} bytes is not a whole number of ${dtype}`);
  }
  if (bytes.byteOffset % size === 0) {
    return new C(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  }
  const copy = new Uint8Array(bytes.byteLength); // misaligned slice of a message: copy once
  copy.set(bytes);
  return new C(copy.buffer, 0, bytes.byteLength / size);
}

/** Decode one {dtype, shape, buffer} payload. */
export function decode(payload: {
  dtype: string;
  shape: number[];
  buffer: DataView | ArrayBuffer | ArrayBufferView;
}): Decoded {
  const data = view(bytesOf(payload.buffer), payload.dtype);
  const expected = payload.shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new Error(`patternviz: ${payload.dtype} buffer of ${data.length} values, shape ${payload.shape}`);
  }
  return { data, shape: payload.shape, dtype: payload.dtype };
}

/** uint32 ids from the `selection` trait (bytes). */
export function decodeIds(value: DataView | ArrayBuffer | ArrayBufferView | null | undefined): Uint32Array {
  if (!value) return new Uint32Array(0);
  const bytes = bytesOf(value);
  if (bytes.byteLength === 0) return new Uint32Array(0);
  return view(bytes, "uint32") as Uint32Array;
}

/** Sorted unique uint32 ids -> a DataView the `selection` trait accepts. */
export function encodeIds(ids: ArrayLike<number>): DataView {
  const out = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = ids[i];
  out.sort();
  let n = 0;
  for (let i = 0; i < out.length; i++) if (i === 0 || out[i] !== out[i - 1]) out[n++] = out[i];
  const trimmed = out.slice(0, n);
  return new DataView(trimmed.buffer);
}

export interface ArraySpec {
  dtype: string;
  shape: number[];
  nbytes: number;
}

/** Reassembles one chunked RPC reply (see patternviz_widget/widget/rpc.py). */
export class Assembler {
  private parts = 0;
  private seen = 0;
  private specs: Record<string, ArraySpec> = {};
  private bytes: Record<string, Uint8Array> = {};
  private single: Record<string, Uint8Array> = {};
  meta: Record<string, unknown> = {};

  /** Feed one message; returns true when every part has arrived. */
  add(
    content: {
      part: number;
      parts: number;
      chunks: { name: string; offset: number }[];
      meta?: Record<string, unknown>;
      arrays?: Record<string, ArraySpec>;
    },
    buffers: (DataView | ArrayBuffer)[],
  ): boolean {
    if (content.part === 0) {
      this.meta = content.meta ?? {};
      this.specs = content.arrays ?? {};
    }
    this.parts = content.parts;
    content.chunks.forEach((chunk, i) => {
      const piece = bytesOf(buffers[i]);
      const spec = this.specs[chunk.name];
      if (content.parts === 1 || (spec && piece.byteLength === spec.nbytes)) {
        this.single[chunk.name] = piece; // whole array in one buffer: view it, no copy
        return;
      }
      let whole = this.bytes[chunk.name];
      if (!whole) {
        whole = new Uint8Array(spec ? spec.nbytes : chunk.offset + piece.byteLength);
        this.bytes[chunk.name] = whole;
      }
      whole.set(piece, chunk.offset);
    });
    this.seen += 1;
    return this.seen >= this.parts;
  }

  arrays(): Record<string, Decoded> {
    const out: Record<string, Decoded> = {};
    for (const [name, spec] of Object.entries(this.specs)) {
      const raw = this.single[name] ?? this.bytes[name] ?? new Uint8Array(0);
      out[name] = { data: view(raw, spec.dtype), shape: spec.shape, dtype: spec.dtype };
    }
    return out;
  }
}
