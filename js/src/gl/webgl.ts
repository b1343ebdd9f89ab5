// WebGL renderer (three.js): one canvas, one scene per pane drawn with viewport + scissor, so
// compare mode shares one camera and one snapshot holds both panes.
import {
  ArrowHelper,
  GLSL3,
  InterleavedBuffer,
  InterleavedBufferAttribute,
  LessDepth,
  LessEqualDepth,
  RawShaderMaterial,
  SRGBColorSpace,
  BufferAttribute,
  BufferGeometry,
  Color,
  AlwaysDepth,
  DataTexture,
  FloatType,
  Mesh,
  RedFormat,
  RGBAFormat,
  UnsignedByteType,
  Group,
  Line,
  LineBasicMaterial,
  LineSegments,
  Matrix4,
  Points,
  Scene,
  Sphere,
  SphereGeometry,
  Vector3,
  WebGLRenderer,
  WireframeGeometry,
} from "three";
import { makeCamera } from "../lib/camera";
import { hexToRgb } from "../lib/colors";
import { packPoints } from "./pack";
import { GLYPH_MIN_DEVICE_PX, MAX_PALETTE, pointFragment, pointVertex } from "./shaders";
import {
  isSoftwareRenderer,
  makeSplatBuffer,
  splatPane,
  type RGB,
  type SplatBuffer,
  type SplatPoints,
  type SplatStyle,
} from "./splat";
import type { Backend, PaneData, PointPath, RenderOptions } from "./types";

const copyRGB = (out: RGB, c: ArrayLike<number>): void => {
  out[0] = c[0];
  out[1] = c[1];
  out[2] = c[2];
};

/** The full-screen quad of the CPU point path: the splatted colours, and their depth for the decor. */
const QUAD_VERTEX = /* glsl */ `
precision highp float;
in vec3 position;
void main() { gl_Position = vec4(position.xy, 0.0, 1.0); }
`;
const QUAD_FRAGMENT = /* glsl */ `
precision highp float;
precision highp int;
uniform highp sampler2D uColor;
uniform highp sampler2D uDepth;
uniform vec2 uOrigin;
out vec4 fragColor;
void main() {
  ivec2 p = ivec2(gl_FragCoord.xy - uOrigin);
  vec4 c = texelFetch(uColor, p, 0);
  if (c.a == 0.0) discard;
  gl_FragDepth = texelFetch(uDepth, p, 0).r;
  fragColor = vec4(c.rgb, 1.0);
}
`;

/** One pane's CPU point path: its frame buffer, the two textures it is uploaded to and the quad. */
interface SplatGL {
  buf: SplatBuffer;
  color: DataTexture;
  depth: DataTexture;
  quad: Mesh;
  material: RawShaderMaterial;
  /** the palette as RGB rows, for `paletteFor` (the renderer's palette key) */
  palette: RGB[];
  paletteFor: string;
  /** the records handed to splatPane, refilled each frame */
  pts: SplatPoints;
  style: SplatStyle;
  /** one matrix for the frame's projection × view */
  mvp: Matrix4;
}

/** One (layer, epoch) resident on the GPU: its interleaved buffer and the geometries over it. */
interface Resident {
  xyz: Float32Array;
  /** the packed points (also what the CPU point path reads) */
  q: Int16Array;
  cidx: Uint8Array | Uint16Array;
  glyph: Uint8Array;
  palLen: number;
  scale: number;
  bytes: number;
  buffer: InterleavedBuffer;
  main: BufferGeometry;
  selected: BufferGeometry;
  hover: BufferGeometry;
}

interface PaneGL {
  data: PaneData;
  res: Resident;
  scene: Scene;
  main: Points;
  selected: Points;
  hover: Points;
  decor: Group;
  ellipsoids: Group;
  flagVersion: number;
  flagArray: Uint8Array | null;
  axesFor: string;
  splat: SplatGL | null;
}

/** GPU memory kept for point buffers (8 bytes a point): the epochs of a layer stay resident. */
const RESIDENT_BYTES = 256 * 2 ** 20;

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

/** The WebGL implementation's renderer string (unmasked where the browser allows). */
function rendererName(gl: WebGL2RenderingContext): string {
  try {
    const ext = gl.getExtension("WEBGL_debug_renderer_info");
    return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? "");
  } catch {
    return "";
  }
}

export class WebGLBackend implements Backend {
  readonly kind = "webgl" as const;
  readonly canvas: HTMLCanvasElement;
  /** where the points are drawn: by the GPU (point sprites) or splatted on the CPU (splat.ts) */
  readonly points: PointPath;
  /** the points of this frame drawn by the GPU whatever `points` says (snapshots) */
  private gpuOnly = false;
  private renderer: WebGLRenderer;
  private panes: (PaneGL | null)[] = [];
  private camera = makeCamera({ azimuth: 0, elevation: 0, distance: 1, target: [0, 0, 0] }, 1);
  /** resident point buffers by xyz array (LRU order: Map insertion order) */
  private resident = new Map<Float32Array, Resident>();
  private residentBytes = 0;
  /** [pass][flat]: one program each, shared by every pane and epoch */
  private materials: RawShaderMaterial[][];
  private uniforms = {
    palette: { value: Array.from({ length: MAX_PALETTE }, () => new Vector3()) },
    uScale: { value: 1 },
    uSize: { value: 5 },
    uPixelRatio: { value: 1 },
    uDim: { value: 0 },
    uBg: { value: new Vector3(1, 1, 1) },
    uOutline: { value: new Vector3(0, 0, 0) },
    uAccent: { value: new Vector3(0, 0.4, 1) },
  };
  private paletteFor = "";
  private clear = new Color();
  private border = new Color();
  private msaa: {
    fb: WebGLFramebuffer;
    rb: WebGLRenderbuffer;
    resolve: WebGLFramebuffer;
    rb2: WebGLRenderbuffer;
    depth: WebGLRenderbuffer;
    w: number;
    h: number;
  } | null = null;

  /**
   * `points`: "gpu" or "cpu" forces that point path; "auto" splats on the CPU only when the WebGL
   * renderer is software (SwiftShader, llvmpipe), where one draw of 10^6 points costs about 1 s.
   */
  constructor(points: PointPath | "auto" = "auto") {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "pv-canvas";
    this.renderer = new WebGLRenderer({
      canvas: this.canvas,
      antialias: false, // multisampling only offscreen, for snapshots (capture)
      preserveDrawingBuffer: false, // snapshots render and read in one task (capture)
      powerPreference: "high-performance",
    });
    this.renderer.autoClear = false;
    this.points =
      points === "auto"
        ? isSoftwareRenderer(rendererName(this.renderer.getContext() as WebGL2RenderingContext))
          ? "cpu"
          : "gpu"
        : points;
    const make = (pass: number, flat: boolean) =>
      new RawShaderMaterial({
        glslVersion: GLSL3,
        vertexShader: pointVertex(pass),
        fragmentShader: pointFragment(pass, flat),
        uniforms: this.uniforms,
        depthTest: pass !== 2,
        depthWrite: pass === 0,
        depthFunc: pass === 1 ? LessEqualDepth : LessDepth,
      });
    this.materials = [0, 1, 2].map((pass) => [make(pass, false), make(pass, true)]);
  }

  resize(width: number, height: number, dpr: number): void {
    this.renderer.setPixelRatio(dpr);
    this.renderer.setSize(width, height, true);
  }

  /** The GPU copy of a pane's points: a lookup when resident (an epoch switch), else one upload. */
  private residentFor(data: PaneData): Resident {
    const palLen = Math.min(Math.max(data.palette.length, 1), MAX_PALETTE);
    const hit = this.resident.get(data.xyz);
    if (hit && hit.cidx === data.cidx && hit.glyph === data.glyph && hit.palLen === palLen) {
      this.resident.delete(data.xyz); // most recently used last
      this.resident.set(data.xyz, hit);
      return hit;
    }
    if (hit) this.evict(hit);
    const pre = data.packed;
    const { packed, scale } =
      pre && pre.maxClass < palLen && pre.q.length === 4 * data.n
        ? { packed: pre.q, scale: pre.scale }
        : packPoints(data.xyz, data.cidx, data.glyph, palLen);
    const buffer = new InterleavedBuffer(packed, 4);
    const geo = () => {
      const g = new BufferGeometry();
      g.setAttribute("position", new InterleavedBufferAttribute(buffer, 3, 0, true));
      g.setAttribute("meta", new InterleavedBufferAttribute(buffer, 1, 3, false));
      g.boundingSphere = new Sphere(new Vector3(), scale * 2); // no scan of 10^6 points
      return g;
    };
    const main = geo();
    const selected = geo();
    selected.setDrawRange(0, 0);
    const hover = geo();
    hover.setDrawRange(0, 0);
    const res: Resident = {
      xyz: data.xyz,
      q: packed,
      cidx: data.cidx,
      glyph: data.glyph,
      palLen,
      scale,
      bytes: packed.byteLength,
      buffer,
      main,
      selected,
      hover,
    };
    this.resident.set(data.xyz, res);
    this.residentBytes += res.bytes;
    const inUse = new Set(this.panes.map((p) => p?.res));
    for (const r of this.resident.values()) {
      if (this.residentBytes <= RESIDENT_BYTES) break;
      if (r !== res && !inUse.has(r)) this.evict(r);
    }
    return res;
  }

  private evict(r: Resident): void {
    this.resident.delete(r.xyz);
    this.residentBytes -= r.bytes;
    r.main.dispose();
    r.selected.dispose();
    r.hover.dispose();
  }

  /** Pack (and keep) a pane's points before it is shown, so showing it is a bind and a draw. */
  preload(data: PaneData): void {
    this.residentFor(data);
  }

  setPanes(panes: (PaneData | null)[]): void {
    panes.forEach((data, i) => {
      const cur = this.panes[i];
      if (!data) {
        if (cur) this.dropPane(cur);
        this.panes[i] = null;
        return;
      }
      const res = this.residentFor(data);
      if (cur) {
        if (cur.res !== res) {
          cur.res = res;
          cur.main.geometry = res.main;
          cur.selected.geometry = res.selected;
          cur.hover.geometry = res.hover;
          cur.flagArray = null;
        }
        cur.data = data;
        this.syncSelection(cur);
        this.buildDecor(cur);
        return;
      }
      this.panes[i] = this.makePane(data, res);
    });
    for (let i = panes.length; i < this.panes.length; i++) {
      const cur = this.panes[i];
      if (cur) this.dropPane(cur);
    }
    this.panes.length = panes.length;
  }

  /** The selected points as an index list (rebuilt only when the selection changes). */
  private syncSelection(pane: PaneGL): void {
    const d = pane.data;
    if (pane.flagArray === d.flag && pane.flagVersion === d.flagVersion) return;
    pane.flagArray = d.flag;
    pane.flagVersion = d.flagVersion;
    const f = d.flag;
    const n = Math.min(f.length, d.n);
    let count = 0;
    if (d.hasSelection) for (let i = 0; i < n; i++) count += f[i] & 1;
    const geo = pane.res.selected;
    let index = geo.getIndex();
    if (count && (!index || index.count < count)) {
      index = new BufferAttribute(new Uint32Array(Math.max(count, d.n)), 1); // once per resident
      geo.setIndex(index);
    }
    if (count && index) {
      const ids = index.array as Uint32Array;
      for (let i = 0, k = 0; i < n; i++) if (f[i] & 1) ids[k++] = i;
      index.clearUpdateRanges();
      index.addUpdateRange(0, count);
      index.needsUpdate = true;
    }
    geo.setDrawRange(0, count);
    pane.selected.visible = count > 0; // an empty pass is skipped whole (no program, no state)
  }

  private makePane(data: PaneData, res: Resident): PaneGL {
    const main = new Points(res.main, this.materials[0][0]);
    const selected = new Points(res.selected, this.materials[1][0]);
    const hover = new Points(res.hover, this.materials[2][0]);
    for (const [k, p] of [main, selected, hover].entries()) {
      p.frustumCulled = false;
      p.renderOrder = k;
    }
    const scene = new Scene();
    scene.add(main, selected, hover);
    const decor = new Group();
    const ellipsoids = new Group();
    decor.renderOrder = 3;
    ellipsoids.renderOrder = 4;
    scene.add(decor);
    scene.add(ellipsoids);
    const pane: PaneGL = {
      data,
      res,
      scene,
      main,
      selected,
      hover,
      decor,
      ellipsoids,
      flagVersion: -1,
      flagArray: null,
      axesFor: "",
      splat: null,
    };
    this.syncSelection(pane);
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
        const arrow = new ArrowHelper(
          dir,
          new Vector3(),
          r * 1.15,
          new Color(d.muColors[c] ?? "#888"),
          r * 0.12,
          r * 0.05,
        );
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
        const mat = new LineBasicMaterial({
          color: new Color(d.muColors[c] ?? d.palette[c % d.palette.length]),
          transparent: true,
          opacity: 0.28,
        });
        const seg = new LineSegments(sphere, mat);
        const [a, b, cc] = e.axes;
        seg.matrixAutoUpdate = false;
        seg.matrix = new Matrix4().set(
          a[0],
          b[0],
          cc[0],
          e.centre[0],
          a[1],
          b[1],
          cc[1],
          e.centre[1],
          a[2],
          b[2],
          cc[2],
          e.centre[2],
          0,
          0,
          0,
          1,
        );
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
    this.axes = new LineSegments(geo, new LineBasicMaterial({ color: color.clone(), transparent: true, opacity: 0.5 }));
    this.axes.userData.key = key;
    this.axes.renderOrder = 5;
    return this.axes;
  }

  private dropPane(p: PaneGL): void {
    disposeTree(p.decor);
    disposeTree(p.ellipsoids);
    this.dropSplat(p);
  }

  private dropSplat(p: PaneGL): void {
    const s = p.splat;
    if (!s) return;
    s.color.dispose();
    s.depth.dispose();
    s.material.dispose();
    s.quad.geometry.dispose();
    p.scene.remove(s.quad);
    p.splat = null;
  }

  /** The pane's CPU frame buffer and textures for a viewport of w × h device px. */
  private splatFor(pane: PaneGL, w: number, h: number): SplatGL {
    const s = pane.splat;
    if (s && s.buf.w === w && s.buf.h === h) return s;
    this.dropSplat(pane);
    const buf = makeSplatBuffer(w, h);
    const color = new DataTexture(new Uint8Array(buf.color.buffer), w, h, RGBAFormat, UnsignedByteType);
    const depth = new DataTexture(buf.depth, w, h, RedFormat, FloatType);
    const material = new RawShaderMaterial({
      glslVersion: GLSL3,
      vertexShader: QUAD_VERTEX,
      fragmentShader: QUAD_FRAGMENT,
      uniforms: { uColor: { value: color }, uDepth: { value: depth }, uOrigin: { value: [0, 0] } },
      depthTest: true,
      depthWrite: true,
      depthFunc: AlwaysDepth,
    });
    const geo = new BufferGeometry();
    geo.setAttribute("position", new BufferAttribute(new Float32Array([-1, -1, 0, 3, -1, 0, -1, 3, 0]), 3));
    const quad = new Mesh(geo, material);
    quad.frustumCulled = false;
    quad.renderOrder = 0;
    pane.scene.add(quad);
    const pts: SplatPoints = { n: 0, q: new Int16Array(0), scale: 1, palette: [], flag: null, hasSelection: false };
    const style: SplatStyle = { mvp: [], size: 1, bg: [0, 0, 0], outline: [0, 0, 0], accent: [0, 0, 0], hover: -1 };
    pane.splat = { buf, color, depth, quad, material, palette: [], paletteFor: "", pts, style, mvp: new Matrix4() };
    return pane.splat;
  }

  render(opts: RenderOptions): void {
    const { theme } = opts;
    const r = this.renderer;
    const dpr = r.getPixelRatio();
    const bg = theme.background;
    r.setScissorTest(false);
    r.setClearColor(this.clear.setRGB(bg[0], bg[1], bg[2], SRGBColorSpace), 1);
    r.clear(true, true, true);
    r.setScissorTest(true);
    const full = r.domElement.height / dpr;
    const u = this.uniforms;
    u.uSize.value = opts.pointSize;
    u.uPixelRatio.value = dpr;
    u.uBg.value.set(bg[0], bg[1], bg[2]);
    const fg = theme.foreground;
    u.uOutline.value.set(fg[0], fg[1], fg[2]);
    const ac = theme.accent;
    u.uAccent.value.set(ac[0], ac[1], ac[2]);
    const flat = opts.pointSize * dpr < GLYPH_MIN_DEVICE_PX ? 1 : 0;
    this.border.setRGB(theme.border[0], theme.border[1], theme.border[2], SRGBColorSpace);
    let cpuPoints = 0;
    this.panes.forEach((pane, i) => {
      const vp = opts.viewports[i];
      if (!pane || !vp || vp.w < 2 || vp.h < 2) return;
      const y = full - vp.y - vp.h; // three's viewport origin is bottom-left
      r.setViewport(vp.x, y, vp.w, vp.h);
      r.setScissor(vp.x, y, vp.w, vp.h);
      this.setPalette(pane.data.palette);
      u.uScale.value = pane.res.scale;
      u.uDim.value = pane.data.hasSelection ? 1 : 0;
      pane.main.material = this.materials[0][flat];
      pane.selected.material = this.materials[1][flat];
      const h = opts.hover[i] ?? -1;
      const hovered = h >= 0 && h < pane.data.n;
      pane.res.hover.setDrawRange(hovered ? h : 0, hovered ? 1 : 0);
      pane.hover.visible = hovered;
      pane.ellipsoids.visible = !!pane.data.ellipsoids;
      const axes = this.axesFor(Math.max(pane.data.radius, 1e-6), this.border);
      if (axes.parent !== pane.scene) pane.scene.add(axes);
      axes.visible = opts.showAxes;
      makeCamera(opts.camera, vp.w / vp.h, this.camera);
      const cpu = this.points === "cpu" && !this.gpuOnly;
      pane.main.visible = !cpu;
      if (cpu) {
        pane.selected.visible = false;
        pane.hover.visible = false;
        this.splatInto(pane, opts, dpr, vp.x, y, vp.w, vp.h, h);
      } else {
        pane.selected.visible = pane.res.selected.drawRange.count > 0;
        if (pane.splat) pane.splat.quad.visible = false;
      }
      r.render(pane.scene, this.camera);
      if (cpu) cpuPoints += pane.data.n;
    });
    // the CPU path issues no point draw call: a user-timing mark says how many points this frame drew
    if (cpuPoints > 0 && typeof performance !== "undefined" && performance.mark) {
      performance.mark("patternviz:points", { detail: { count: cpuPoints } });
      performance.clearMarks("patternviz:points");
    }
  }

  /** Splat the pane's points for this frame into its textures (viewport in CSS px, GL origin). */
  private splatInto(
    pane: PaneGL,
    opts: RenderOptions,
    dpr: number,
    vx: number,
    vy: number,
    vw: number,
    vh: number,
    hover: number,
  ): void {
    const theme = opts.theme;
    // three's device viewport: each of x, y, w, h times the pixel ratio, rounded
    const x = Math.round(vx * dpr),
      y = Math.round(vy * dpr),
      w = Math.round(vw * dpr),
      h = Math.round(vh * dpr);
    const s = this.splatFor(pane, Math.max(w, 1), Math.max(h, 1));
    const d = pane.data;
    // no allocation per frame: the palette as RGB rows (rebuilt when the palette or its length
    // changes), one matrix, one points and one style record, reused; splatPane caches its tables
    const palLen = pane.res.palLen;
    if (s.paletteFor !== this.paletteFor || s.palette.length !== palLen) {
      const pal = this.uniforms.palette.value;
      s.palette = [];
      for (let k = 0; k < palLen; k++) s.palette.push([pal[k].x, pal[k].y, pal[k].z]);
      s.paletteFor = this.paletteFor;
    }
    s.mvp.multiplyMatrices(this.camera.projectionMatrix, this.camera.matrixWorldInverse);
    const pts = s.pts;
    pts.n = d.n;
    pts.q = pane.res.q;
    pts.scale = pane.res.scale;
    pts.palette = s.palette;
    pts.flag = d.flag;
    pts.hasSelection = d.hasSelection;
    const st = s.style;
    st.mvp = s.mvp.elements;
    st.size = opts.pointSize * dpr;
    copyRGB(st.bg, theme.background);
    copyRGB(st.outline, theme.foreground);
    copyRGB(st.accent, theme.accent);
    st.hover = hover >= 0 && hover < d.n ? hover : -1;
    splatPane(s.buf, pts, st, dpr);
    s.color.needsUpdate = true;
    s.depth.needsUpdate = true;
    (s.material.uniforms.uOrigin.value as number[])[0] = x;
    (s.material.uniforms.uOrigin.value as number[])[1] = y;
    s.quad.visible = true;
  }

  private setPalette(pal: string[]): void {
    const key = pal.join(",");
    if (key === this.paletteFor) return;
    this.paletteFor = key;
    this.uniforms.palette.value.forEach((v, k) => {
      const c = hexToRgb(pal[k % Math.max(pal.length, 1)] ?? "#888888");
      v.set(c[0], c[1], c[2]);
    });
  }

  /** The frame drawn into a multisampled offscreen buffer and read back (snapshots): the screen
   * canvas is single-sampled and not preserved, so this renders and reads in one task. */
  capture(opts: RenderOptions): ImageData {
    const r = this.renderer;
    const gl = r.getContext() as WebGL2RenderingContext;
    const w = this.canvas.width,
      h = this.canvas.height;
    if (!this.msaa || this.msaa.w !== w || this.msaa.h !== h) {
      this.dropMsaa(gl);
      const samples = Math.min(4, gl.getParameter(gl.MAX_SAMPLES) as number);
      const rb = gl.createRenderbuffer()!;
      gl.bindRenderbuffer(gl.RENDERBUFFER, rb);
      gl.renderbufferStorageMultisample(gl.RENDERBUFFER, samples, gl.RGBA8, w, h);
      const depth = gl.createRenderbuffer()!;
      gl.bindRenderbuffer(gl.RENDERBUFFER, depth);
      gl.renderbufferStorageMultisample(gl.RENDERBUFFER, samples, gl.DEPTH24_STENCIL8, w, h);
      const fb = gl.createFramebuffer()!;
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.RENDERBUFFER, rb);
      gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.DEPTH_STENCIL_ATTACHMENT, gl.RENDERBUFFER, depth);
      const rb2 = gl.createRenderbuffer()!;
      gl.bindRenderbuffer(gl.RENDERBUFFER, rb2);
      gl.renderbufferStorage(gl.RENDERBUFFER, gl.RGBA8, w, h);
      const resolve = gl.createFramebuffer()!;
      gl.bindFramebuffer(gl.FRAMEBUFFER, resolve);
      gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.RENDERBUFFER, rb2);
      this.msaa = { fb, rb, resolve, rb2, depth, w, h };
    }
    const m = this.msaa;
    r.setRenderTarget(null);
    gl.bindFramebuffer(gl.FRAMEBUFFER, m.fb); // three believes it draws to the canvas: same colours
    this.gpuOnly = true; // snapshots draw the points as point sprites, multisampled, on either path
    try {
      this.render(opts);
    } finally {
      this.gpuOnly = false;
    }
    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, m.fb);
    gl.bindFramebuffer(gl.DRAW_FRAMEBUFFER, m.resolve);
    gl.disable(gl.SCISSOR_TEST);
    gl.blitFramebuffer(0, 0, w, h, 0, 0, w, h, gl.COLOR_BUFFER_BIT, gl.NEAREST);
    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, m.resolve);
    const px = new Uint8Array(4 * w * h);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    r.resetState();
    const out = new ImageData(w, h);
    const row = 4 * w;
    for (let y = 0; y < h; y++) out.data.set(px.subarray((h - 1 - y) * row, (h - y) * row), y * row); // GL rows are bottom-up
    return out;
  }

  private dropMsaa(gl: WebGL2RenderingContext): void {
    const m = this.msaa;
    if (!m) return;
    gl.deleteFramebuffer(m.fb);
    gl.deleteFramebuffer(m.resolve);
    gl.deleteRenderbuffer(m.rb);
    gl.deleteRenderbuffer(m.rb2);
    gl.deleteRenderbuffer(m.depth);
    this.msaa = null;
  }

  destroy(): void {
    this.panes.forEach((p) => p && this.dropPane(p));
    this.panes = [];
    for (const r of [...this.resident.values()]) this.evict(r);
    this.materials.flat().forEach((m) => m.dispose());
    if (this.axes) {
      this.axes.geometry.dispose();
      (this.axes.material as LineBasicMaterial).dispose();
    }
    this.dropMsaa(this.renderer.getContext() as WebGL2RenderingContext);
    this.renderer.dispose();
    this.renderer.forceContextLoss();
    this.canvas.remove();
  }
}
