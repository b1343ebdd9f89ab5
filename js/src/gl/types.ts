// What a renderer draws in one pane, and the contract both renderers (WebGL, Canvas2D) implement.
import type { PackedPoints } from "../data";
import type { CameraState } from "../lib/camera";
import type { Theme } from "../lib/theme";

export interface Ellipsoid {
  centre: [number, number, number];
  axes: [number, number, number][];
}

export interface PaneData {
  title: string;
  /** the store key drawn (frame probe), when the pane shows one key */
  key?: string;
  n: number;
  xyz: Float32Array;
  /** palette index per point (class, or layer in forward mode) */
  cidx: Uint8Array | Uint16Array;
  glyph: Uint8Array;
  /** bit 0: selected */
  flag: Uint8Array;
  flagVersion: number;
  palette: string[];
  mu: number[][] | null;
  muLabels: string[];
  muColors: string[];
  ellipsoids: (Ellipsoid | null)[] | null;
  path: Float32Array | null;
  radius: number;
  hasSelection: boolean;
  /** xyz, cidx and glyph already in the GPU layout (uploaded as is when the palette covers it) */
  packed?: PackedPoints;
}

export interface Viewport {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface RenderOptions {
  camera: CameraState;
  viewports: Viewport[];
  hover: number[];
  theme: Theme;
  pointSize: number;
  showAxes: boolean;
}

/** Where the WebGL renderer draws points: GPU point sprites, or splatted on the CPU (gl/splat.ts). */
export type PointPath = "gpu" | "cpu";

export interface Backend {
  readonly kind: "webgl" | "canvas2d";
  /** the WebGL renderer's point path (absent: Canvas2D, which draws everything on the CPU) */
  readonly points?: PointPath;
  readonly canvas: HTMLCanvasElement;
  resize(width: number, height: number, dpr: number): void;
  setPanes(panes: (PaneData | null)[]): void;
  render(opts: RenderOptions): void;
  /** the frame as pixels, drawn and read in one task (snapshots); absent: read the canvas */
  capture?(opts: RenderOptions): ImageData;
  /** prepare a pane's points ahead of showing them (an epoch switch is then a bind and a draw) */
  preload?(data: PaneData): void;
  destroy(): void;
}

/** Point size in CSS px that keeps 10^2 .. 10^6 points readable. */
export function autoPointSize(n: number): number {
  return Math.max(2.2, Math.min(9, 14 - 2 * Math.log10(Math.max(n, 1))));
}
