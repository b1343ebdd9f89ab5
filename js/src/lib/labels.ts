// Greedy collision avoidance for the class-direction labels: each label tries positions pushed
// outward from the view centre through its anchor (the arrow's tip), at growing distances and at
// angles fanning out from that direction, and takes the first that overlaps no label placed before
// it and stays inside the pane; else the one with the least overlap. The exported figures place
// their labels by the same rule (patternviz_widget/figures/_common.py `place_labels`).

export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const DISTANCES = [0.6, 1.2, 2, 3, 4.5, 6.5, 9, 12, 16, 21, 27, 34];
const TURNS = [0, 30, -30, 60, -60, 90, -90, 135, -135, 180].map((d) => (d * Math.PI) / 180);

function overlapArea(a: Box, b: Box): number {
  return (
    Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0)) * Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0))
  );
}

/**
 * Centres for boxes `sizes` ([w, h] each) near `anchors` ([x, y] each), all in pixels. `fixed`
 * boxes (e.g. a pane title) are avoided as well; placed labels keep `pad` pixels clear around
 * them. Returns the placed boxes, in input order.
 */
export function placeLabels(
  anchors: [number, number][],
  sizes: [number, number][],
  centre: [number, number],
  bounds: Box,
  step: number,
  fixed: Box[] = [],
  pad = 2,
): Box[] {
  const placed: Box[] = [...fixed];
  const out: Box[] = [];
  anchors.forEach(([ax, ay], i) => {
    const [w, h] = sizes[i];
    const dx = ax - centre[0],
      dy = ay - centre[1];
    const base = Math.hypot(dx, dy) > 1e-9 ? Math.atan2(dy, dx) : 0;
    let best: Box = { x0: ax - w / 2, y0: ay - h / 2, x1: ax + w / 2, y1: ay + h / 2 };
    let bestCost = Infinity;
    search: for (const dist of DISTANCES) {
      for (const turn of TURNS) {
        const a = base + turn;
        const r = dist * step + 0.5 * Math.abs(w * Math.cos(a)) + 0.5 * Math.abs(h * Math.sin(a));
        const cx = ax + r * Math.cos(a),
          cy = ay + r * Math.sin(a);
        const box = { x0: cx - w / 2, y0: cy - h / 2, x1: cx + w / 2, y1: cy + h / 2 };
        let cost = 0;
        for (const b of placed) cost += overlapArea(box, b);
        cost +=
          (Math.max(0, bounds.x0 - box.x0) + Math.max(0, box.x1 - bounds.x1)) * h +
          (Math.max(0, bounds.y0 - box.y0) + Math.max(0, box.y1 - bounds.y1)) * w;
        if (cost < bestCost) {
          best = box;
          bestCost = cost;
        }
        if (bestCost === 0) break search;
      }
    }
    out.push(best);
    placed.push({ x0: best.x0 - pad, y0: best.y0 - pad, x1: best.x1 + pad, y1: best.y1 + pad });
  });
  return out;
}
