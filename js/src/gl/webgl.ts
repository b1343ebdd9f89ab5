// WebGL renderer (three.js): one canvas, one scene per pane drawn with viewport + scissor, so
// compare mode shares one camera and one snapshot holds both panes.
import {
  ArrowHelper,
  BufferAttribute,
  BufferGeometry,
  Color,
  Group,
  Line,
  LineBasicMaterial,
  LineSegments,
  Matrix4,
  Points,
  Scene,
  ShaderMaterial,
  Sphere,
  SphereGeometry,
  Vector3,
  WebGLRenderer,
  WireframeGeometry,
} from "three";
import { makeCamera } from "../lib/camera";
import { hexToRgb } from "../lib/colors";
import { MAX_PALETTE, pointFragment, pointVertex } from "./shaders";
import type { Backend, PaneData, RenderOptions } from "./types";

interface PaneGL {
  data: PaneData;
  scene: Scene;
  points: Points;
  material: ShaderMaterial;
  geometry: BufferGeometry;
  decor: Group;
  ellipsoids: Group;
  flagVersion: number;
  axesFor: string;
}

function disposeTree(obj: Group | Scene): void {
  obj.traverse((o) => {
    const any = o as unknown as { geometry?: BufferGeometry; material?: { dispose(): void } | { dispose(): void }[] };
    any.geometry?.dispose();
    if (Array.isArray(any.material)) any.material.forEach((m) => m.dispose());
    else any.material?.dispose();
  });
}

export function webglAvailable(): boolean {
  try {
    const c = document.createElement("canvas");
    const gl = c.getContext("webgl2");
    const ok = !!gl;
    (gl as WebGL2RenderingContext | null)?.getExtension("WEBGL_lose_context")?.loseContext();
    return ok;
  } catch {
    return false;
  }
}

export class WebGLBackend implements Backend {
  readonly kind = "webgl" as const;
  readonly canvas: HTMLCanvasElement;
  private renderer: WebGLRenderer;
  private panes: (PaneGL | null)[] = [];
  private camera = makeCamera({ azimuth: 0, elevation: 0, distance: 1, target: [0, 0, 0] }, 1);

  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "pv-canvas";
    this.renderer = new WebGLRenderer({
      canvas: this.canvas,
      antialias: true,
      preserveDrawingBuffer: true, // snapshots read the canvas after the frame
      powerPreference: "high-performance",
    });
    this.renderer.autoClear = false;
  }

  resize(width: number, height: number, dpr: number): void {
    this.renderer.setPixelRatio(dpr);
    this.renderer.setSize(width, height, true);
  }

  setPanes(panes: (PaneData | null)[]): void {
    panes.forEach((data, i) => {
      const cur = this.panes[i];
      if (!data) {
        if (cur) this.dropPane(cur);
        this.panes[i] = null;
        return;
      }
      if (cur && cur.data.xyz === data.xyz && cur.data.cidx === data.cidx && cur.data.glyph === data.glyph) {
        cur.data = data;
        if (cur.flagVersion !== data.flagVersion || cur.geometry.getAttribute("flag").array !== data.flag) {
          const attr = cur.geometry.getAttribute("flag") as BufferAttribute;
          if (attr.array !== data.flag) cur.geometry.setAttribute("flag", new BufferAttribute(data.flag, 1));
          else attr.needsUpdate = true;
          cur.flagVersion = data.flagVersion;
        }
        this.buildDecor(cur);
        return;
      }
      if (cur) this.dropPane(cur);
      this.panes[i] = this.makePane(data);
    });
    for (let i = panes.length; i < this.panes.length; i++) {
      const cur = this.panes[i];
      if (cur) this.dropPane(cur);
    }
    this.panes.length = panes.length;
  }

  private makePane(data: PaneData): PaneGL {
    const geometry = new BufferGeometry();
    geometry.setAttribute("position", new BufferAttribute(data.xyz, 3));
    geometry.setAttribute("cidx", new BufferAttribute(data.cidx, 1));
    geometry.setAttribute("glyph", new BufferAttribute(data.glyph, 1));
    geometry.setAttribute("flag", new BufferAttribute(data.flag, 1));
    const r = Math.max(data.radius, 1e-6) * 100;
    geometry.boundingSphere = new Sphere(new Vector3(), r); // no scan of 10^6 points
    const palette = Array.from({ length: MAX_PALETTE }, () => new Vector3());
    const material = new ShaderMaterial({
      vertexShader: pointVertex,
      fragmentShader: pointFragment,
      uniforms: {
        palette: { value: palette },
        paletteSize: { value: 1 },
        uSize: { value: 5 },
        uPixelRatio: { value: 1 },
        uHover: { value: -1 },
        uHasSelection: { value: 0 },
        uBg: { value: new Vector3(1, 1, 1) },
        uOutline: { value: new Vector3(0, 0, 0) },
        uAccent: { value: new Vector3(0, 0.4, 1) },
      },
      depthTest: true,
      depthWrite: true,
    });
    const points = new Points(geometry, material);
    points.frustumCulled = false;
    const scene = new Scene();
    scene.add(points);
    const decor = new Group();
    const ellipsoids = new Group();
    scene.add(decor);
    scene.add(ellipsoids);
    const pane: PaneGL = { data, scene, points, material, geometry, decor, ellipsoids, flagVersion: data.flagVersion, axesFor: "" };
    this.buildDecor(pane);
    return pane;
  }

  private buildDecor(pane: PaneGL): void {
    const d = pane.data;
    const sig = JSON.stringify([d.mu, d.muColors, d.radius, !!d.ellipsoids, d.path?.length ?? 0, d.palette]);
    if (pane.axesFor === sig) return;
    pane.axesFor = sig;
    for (const g of [pane.decor, pane.ellipsoids]) {
      disposeTree(g);
      g.clear();
    }
    const r = Math.max(d.radius, 1e-6);
    if (d.mu) {
      d.mu.forEach((m, c) => {
        const dir = new Vector3(m[0], m[1], m[2]);
        const len = dir.length();
        if (!(len > 0)) return;
        dir.normalize();
        const arrow = new ArrowHelper(dir, new Vector3(), r * 1.15, new Color(d.muColors[c] ?? "#888"), r * 0.12, r * 0.05);
        pane.decor.add(arrow);
      });
    }
    if (d.path && d.path.length >= 6) {
      const geo = new BufferGeometry();
      geo.setAttribute("position", new BufferAttribute(d.path, 3));
      pane.decor.add(new Line(geo, new LineBasicMaterial({ color: 0x888888 })));
    }
    if (d.ellipsoids) {
      const sphere = new WireframeGeometry(new SphereGeometry(1, 18, 10));
      d.ellipsoids.forEach((e, c) => {
        if (!e) return;
        const mat = new LineBasicMaterial({ color: new Color(d.muColors[c] ?? d.palette[c % d.palette.length]), transparent: true, opacity: 0.28 });
        const seg = new LineSegments(sphere, mat);
        const [a, b, cc] = e.axes;
        seg.matrixAutoUpdate = false;
        seg.matrix = new Matrix4().set(a[0], b[0], cc[0], e.centre[0], a[1], b[1], cc[1], e.centre[1], a[2], b[2], cc[2], e.centre[2], 0, 0, 0, 1);
        pane.ellipsoids.add(seg);
      });
    }
  }

  private axes?: LineSegments;

  private axesFor(r: number, color: Color): LineSegments {
    const key = `${r}|${color.getHexString()}`;
    if (this.axes && this.axes.userData.key === key) return this.axes;
    if (this.axes) {
      this.axes.geometry.dispose();
      (this.axes.material as LineBasicMaterial).dispose();
    }
    const L = r * 1.25;
    const pos = new Float32Array([-L, 0, 0, L, 0, 0, 0, -L, 0, 0, L, 0, 0, 0, -L, 0, 0, L]);
    const geo = new BufferGeometry();
    geo.setAttribute("position", new BufferAttribute(pos, 3));
    this.axes = new LineSegments(geo, new LineBasicMaterial({ color, transparent: true, opacity: 0.5 }));
    this.axes.userData.key = key;
    return this.axes;
  }

  private dropPane(p: PaneGL): void {
    p.geometry.dispose();
    p.material.dispose();
    disposeTree(p.decor);
    disposeTree(p.ellipsoids);
  }

  render(opts: RenderOptions): void {
    const { theme } = opts;
    const r = this.renderer;
    const dpr = r.getPixelRatio();
    const bg = theme.background;
    r.setScissorTest(false);
    r.setClearColor(new Color().setRGB(bg[0], bg[1], bg[2], "srgb"), 1);
    r.clear(true, true, true);
    r.setScissorTest(true);
    const full = r.domElement.height / dpr;
    this.panes.forEach((pane, i) => {
      const vp = opts.viewports[i];
      if (!pane || !vp || vp.w < 2 || vp.h < 2) return;
      const y = full - vp.y - vp.h; // three's viewport origin is bottom-left
      r.setViewport(vp.x, y, vp.w, vp.h);
      r.setScissor(vp.x, y, vp.w, vp.h);
      const u = pane.material.uniforms;
      const pal = pane.data.palette;
      (u.palette.value as Vector3[]).forEach((v, k) => {
        const c = hexToRgb(pal[k % Math.max(pal.length, 1)] ?? "#888888");
        v.set(c[0], c[1], c[2]);
      });
      u.paletteSize.value = Math.min(Math.max(pal.length, 1), MAX_PALETTE);
      u.uSize.value = opts.pointSize;
      u.uPixelRatio.value = dpr;
      u.uHover.value = opts.hover[i] ?? -1;
      u.uHasSelection.value = pane.data.hasSelection ? 1 : 0;
      u.uBg.value.set(bg[0], bg[1], bg[2]);
      const fg = theme.foreground;
      u.uOutline.value.set(fg[0], fg[1], fg[2]);
      const ac = theme.accent;
      u.uAccent.value.set(ac[0], ac[1], ac[2]);
      pane.ellipsoids.visible = !!pane.data.ellipsoids;
      const axes = this.axesFor(Math.max(pane.data.radius, 1e-6), new Color().setRGB(theme.border[0], theme.border[1], theme.border[2], "srgb"));
      pane.scene.add(axes);
      axes.visible = opts.showAxes;
      makeCamera(opts.camera, vp.w / vp.h, this.camera);
      r.render(pane.scene, this.camera);
    });
  }

  destroy(): void {
    this.panes.forEach((p) => p && this.dropPane(p));
    this.panes = [];
    if (this.axes) {
      this.axes.geometry.dispose();
      (this.axes.material as LineBasicMaterial).dispose();
    }
    this.renderer.dispose();
    this.renderer.forceContextLoss();
    this.canvas.remove();
  }
}
