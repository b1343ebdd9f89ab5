import { describe, expect, it } from "vitest";
import { Assembler, decode, decodeIds, encodeIds, view } from "../src/wire";

describe("wire", () => {
  it("views a buffer without copying when aligned", () => {
    const buf = new ArrayBuffer(32);
    const bytes = new Uint8Array(buf, 8, 12);
    const f = view(bytes, "float32");
    expect(f).toBeInstanceOf(Float32Array);
    expect(f.buffer).toBe(buf);
    expect(f.byteOffset).toBe(8);
    expect(f.length).toBe(3);
  });

  it("copies once when the slice is misaligned (offsets inside a websocket message)", () => {
    const src = new Float32Array([1.5, -2, 3]);
    const raw = new Uint8Array(13);
    raw.set(new Uint8Array(src.buffer), 1);
    const f = view(raw.subarray(1), "float32") as Float32Array;
    expect(Array.prototype.slice.call(f)).toEqual([1.5, -2, 3]);
  });

  it("decodes {dtype, shape, buffer} and checks the size", () => {
    const d = decode({ dtype: "uint16", shape: [2, 2], buffer: new DataView(new Uint16Array([1, 2, 3, 4]).buffer) });
    expect(d.data).toBeInstanceOf(Uint16Array);
    expect(d.data[3]).toBe(4);
    expect(() => decode({ dtype: "float32", shape: [3], buffer: new ArrayBuffer(8) })).toThrow();
    expect(() => view(new Uint8Array(4), "float64")).toThrow(/unsupported/);
  });

  it("round-trips selection ids sorted and unique", () => {
    const dv = encodeIds([9, 2, 9, 40, 0]);
    expect(Array.from(decodeIds(dv))).toEqual([0, 2, 9, 40]);
    expect(decodeIds(null).length).toBe(0);
  });

  it("reassembles a chunked reply", () => {
    const whole = new Float32Array([0, 1, 2, 3, 4, 5]);
    const bytes = new Uint8Array(whole.buffer);
    const asm = new Assembler();
    const spec = { xyz: { dtype: "float32", shape: [2, 3], nbytes: 24 } };
    expect(
      asm.add({ part: 0, parts: 2, chunks: [{ name: "xyz", offset: 0 }], meta: { n: 2 }, arrays: spec }, [
        new DataView(bytes.buffer, 0, 16),
      ]),
    ).toBe(false);
    expect(
      asm.add({ part: 1, parts: 2, chunks: [{ name: "xyz", offset: 16 }] }, [new DataView(bytes.buffer, 16, 8)]),
    ).toBe(true);
    const out = asm.arrays();
    expect(Array.from(out.xyz.data)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(asm.meta).toEqual({ n: 2 });
  });
});
