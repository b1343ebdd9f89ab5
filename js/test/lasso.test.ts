import { describe, expect, it } from "vitest";
import { nearest, pointsInBox, pointsInPolygon } from "../src/lib/lasso";

const pts = new Float32Array([10, 10, 50, 50, 90, 10, NaN, NaN, 50, 20]);

describe("selection geometry", () => {
  it("finds points inside a polygon (NaN = hidden)", () => {
    const tri = [0, 0, 100, 0, 50, 60];
    expect(Array.from(pointsInPolygon(pts, tri))).toEqual([0, 1, 2, 4]);
    const square = [40, 15, 60, 15, 60, 60, 40, 60];
    expect(Array.from(pointsInPolygon(pts, square))).toEqual([1, 4]);
  });

  it("maps drawn indices through ids", () => {
    const ids = new Uint32Array([100, 101, 102, 103, 104]);
    expect(Array.from(pointsInBox(pts, 0, 0, 60, 30, ids))).toEqual([100, 104]);
  });

  it("picks the nearest point within a radius, else -1", () => {
    expect(nearest(pts, 52, 22, 5)).toBe(4);
    expect(nearest(pts, 200, 200, 5)).toBe(-1);
  });
});
