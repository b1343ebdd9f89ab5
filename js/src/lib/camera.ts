// Orbit camera state shared by every pane (compare mode draws two panes with ONE camera).
import { Matrix4, PerspectiveCamera, Vector3 } from "three";
import type { CameraTrait } from "../model";

export interface CameraState {
  azimuth: number; // radians around +y
  elevation: number; // radians above the xz plane
  distance: number;
  target: [number, number, number];
}

export const FOV = 32;

/** Viewing angles (radians) of a default view; the data-chosen ones come in the catalog. */
export interface Angles {
  azimuth: number;
  elevation: number;
}

export const FALLBACK_ANGLES: Angles = { azimuth: 0.7, elevation: 0.42 };

/**
 * The default view framing `radius`: `angles` are the catalog's `cameras[model]`, the direction
 * that fans the class directions out (patternviz_widget/results/camera.py, which the exported
 * figures use too); without them a fixed oblique view.
 */
export function defaultCamera(radius: number, angles?: Angles | null): CameraState {
  const r = Number.isFinite(radius) && radius > 0 ? radius : 1;
  const a = angles && Number.isFinite(angles.azimuth) && Number.isFinite(angles.elevation) ? angles : FALLBACK_ANGLES;
  return { azimuth: a.azimuth, elevation: a.elevation, distance: r * 4.6, target: [0, 0, 0] };
}

export function fromTrait(t: CameraTrait | undefined, fallback: CameraState): CameraState {
  if (!t || t.distance === undefined) return fallback;
  return {
    azimuth: t.azimuth ?? fallback.azimuth,
    elevation: t.elevation ?? fallback.elevation,
    distance: t.distance ?? fallback.distance,
    target: (t.target as [number, number, number]) ?? fallback.target,
  };
}

export function toTrait(c: CameraState): CameraTrait {
  const r = (x: number) => Math.round(x * 1e5) / 1e5;
  return {
    azimuth: r(c.azimuth),
    elevation: r(c.elevation),
    distance: r(c.distance),
    target: c.target.map(r) as [number, number, number],
  };
}

/** A three.js camera placed by `c` for a pane of `aspect` (w/h). */
export function makeCamera(c: CameraState, aspect: number, cam?: PerspectiveCamera): PerspectiveCamera {
  const camera = cam ?? new PerspectiveCamera(FOV, aspect, 0.01, 1000);
  // keep the nominal field of view across the narrow side, so tall panes (compare) frame the same
  camera.fov = aspect >= 1 ? FOV : (2 * Math.atan(Math.tan((FOV * Math.PI) / 360) / aspect) * 180) / Math.PI;
  camera.aspect = aspect;
  const ce = Math.cos(c.elevation);
  const t = new Vector3(...c.target);
  camera.position.set(
    t.x + c.distance * ce * Math.sin(c.azimuth),
    t.y + c.distance * Math.sin(c.elevation),
    t.z + c.distance * ce * Math.cos(c.azimuth),
  );
  camera.near = Math.max(c.distance / 1000, 1e-4);
  camera.far = c.distance * 20 + 10;
  camera.up.set(0, 1, 0);
  camera.lookAt(t);
  camera.updateProjectionMatrix();
  camera.updateMatrixWorld(true);
  return camera;
}

export function orbit(c: CameraState, dx: number, dy: number): CameraState {
  const lim = Math.PI / 2 - 0.01;
  return { ...c, azimuth: c.azimuth - dx * 0.008, elevation: Math.max(-lim, Math.min(lim, c.elevation + dy * 0.008)) };
}

export function pan(c: CameraState, dx: number, dy: number, paneHeight: number, paneWidth?: number): CameraState {
  const cam = makeCamera(c, 1);
  const perPx =
    (2 * c.distance * Math.tan((FOV * Math.PI) / 360)) / Math.max(Math.min(paneHeight, paneWidth ?? paneHeight), 1);
  const right = new Vector3().setFromMatrixColumn(cam.matrixWorld, 0).multiplyScalar(-dx * perPx);
  const up = new Vector3().setFromMatrixColumn(cam.matrixWorld, 1).multiplyScalar(dy * perPx);
  const t = new Vector3(...c.target).add(right).add(up);
  return { ...c, target: [t.x, t.y, t.z] };
}

export function zoom(c: CameraState, factor: number): CameraState {
  return { ...c, distance: Math.max(1e-4, Math.min(1e6, c.distance * factor)) };
}

/**
 * Project xyz (interleaved) to pane pixels: out xy interleaved (NaN behind the camera) and depth.
 * This is the CPU twin of the vertex shader, used for hover, lasso and the Canvas2D fallback.
 */
export function project(
  xyz: Float32Array,
  camera: PerspectiveCamera,
  width: number,
  height: number,
  out?: Float32Array,
  depth?: Float32Array,
): { xy: Float32Array; depth: Float32Array } {
  const n = xyz.length / 3;
  const xy = out && out.length === 2 * n ? out : new Float32Array(2 * n);
  const z = depth && depth.length === n ? depth : new Float32Array(n);
  const m = new Matrix4().multiplyMatrices(camera.projectionMatrix, camera.matrixWorldInverse).elements;
  const hw = width / 2,
    hh = height / 2;
  for (let i = 0; i < n; i++) {
    const x = xyz[3 * i],
      y = xyz[3 * i + 1],
      zz = xyz[3 * i + 2];
    const cw = m[3] * x + m[7] * y + m[11] * zz + m[15];
    if (cw <= 1e-9) {
      xy[2 * i] = NaN;
      xy[2 * i + 1] = NaN;
      z[i] = Infinity;
      continue;
    }
    const cx = (m[0] * x + m[4] * y + m[8] * zz + m[12]) / cw;
    const cy = (m[1] * x + m[5] * y + m[9] * zz + m[13]) / cw;
    xy[2 * i] = (cx + 1) * hw;
    xy[2 * i + 1] = (1 - cy) * hh;
    z[i] = cw;
  }
  return { xy, depth: z };
}
