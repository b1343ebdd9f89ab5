import { describe, expect, it } from "vitest";
import { placeLabels, type Box } from "../src/lib/labels";

const overlaps = (a: Box, b: Box) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

describe("placeLabels", () => {
  it("separates labels whose anchors coincide and keeps them in the pane", () => {
    // ten arrows whose tips project onto nearly one spot (the overlap "cring" / "squle")
    const anchors: [number, number][] = Array.from({ length: 10 }, (_, k) => [300 + k * 0.5, 200 - k * 0.3]);
    const sizes: [number, number][] = anchors.map((_, k) => [30 + 4 * k, 14]);
    const bounds = { x0: 0, y0: 0, x1: 600, y1: 400 };
    const title = { x0: 10, y0: 8, x1: 120, y1: 28 };
    const boxes = placeLabels(anchors, sizes, [300, 200], bounds, 3, [title]);
    expect(boxes).toHaveLength(10);
    for (let i = 0; i < boxes.length; i++) {
      const b = boxes[i];
      expect(b.x1 - b.x0).toBeCloseTo(sizes[i][0]);
      expect(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= 600 && b.y1 <= 400).toBe(true);
      expect(overlaps(b, title)).toBe(false);
      for (let j = 0; j < i; j++) expect(overlaps(b, boxes[j])).toBe(false);
      // and near its own tip
      expect(Math.hypot((b.x0 + b.x1) / 2 - anchors[i][0], (b.y0 + b.y1) / 2 - anchors[i][1])).toBeLessThan(120);
    }
  });

  it("puts a lone label just outside its arrow's tip, away from the centre", () => {
    const [b] = placeLabels([[400, 200]], [[40, 14]], [300, 200], { x0: 0, y0: 0, x1: 600, y1: 400 }, 3);
    expect(b.x0).toBeGreaterThan(400);
    expect(b.x0 - 400).toBeLessThan(6);
  });
});
