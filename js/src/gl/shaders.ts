// Point shaders (WebGL2, GLSL ES 3.00). Every point of a pane comes from ONE interleaved buffer of
// 8 bytes per point: int16 x, y, z (normalised to the pane's box, scaled back by uScale) and one
// int16 whose low byte is the palette index (class, or layer in forward mode) and high byte the
// glyph code (the paper's reliable circle 1, unreliable triangle 2, non-discriminative square 0;
// 3 = not drawn). Three passes share that buffer: all points (PASS 0), the selected points over an
// index list (PASS 1), the hovered point (PASS 2). FLAT drops the glyph cut (no discard) where
// points are too small on screen for glyphs to be told apart.

export const MAX_PALETTE = 24;

/** Below this many device pixels a point is drawn as a flat square. */
export const GLYPH_MIN_DEVICE_PX = 5;

export function pointVertex(pass: number): string {
  return /* glsl */ `
precision highp float;
precision highp int;
#define PASS ${pass}
uniform mat4 modelViewMatrix;
uniform mat4 projectionMatrix;
uniform vec3 palette[${MAX_PALETTE}];
uniform float uScale;
uniform float uSize;
uniform float uPixelRatio;
uniform float uDim;
uniform vec3 uBg;
in vec3 position;
in float meta;
out vec3 vColor;
flat out int vGlyph;
void main() {
  int m = int(meta + 0.5);
  int g = m >> 8;
  vGlyph = g;
  if (g > 2) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 0.0; return; }
  gl_Position = projectionMatrix * (modelViewMatrix * vec4(position * uScale, 1.0));
  vec3 c = palette[m & 255];
  float size = uSize;
  if (g == 0) { c = mix(c, uBg, 0.42); size *= 0.78; }
  else if (g == 2) { size *= 1.18; }
#if PASS == 0
  if (uDim > 0.5) { c = mix(c, uBg, 0.8); size *= 0.8; }
#elif PASS == 1
  size *= 1.3;
#else
  size = max(size * 2.0, 12.0);
#endif
  vColor = c;
  gl_PointSize = size * uPixelRatio;
}
`;
}

export function pointFragment(pass: number, flat: boolean): string {
  return /* glsl */ `
precision highp float;
precision highp int;
#define PASS ${pass}
${flat ? "#define FLAT 1" : ""}
uniform vec3 uOutline;
uniform vec3 uAccent;
in vec3 vColor;
flat in int vGlyph;
out vec4 fragColor;
void main() {
#ifdef FLAT
  fragColor = vec4(vColor, 1.0);
#else
  vec2 p = gl_PointCoord * 2.0 - 1.0;
  p.y = -p.y;
  float d;
  if (vGlyph == 0) {
    d = max(abs(p.x), abs(p.y)) - 0.8;
  } else if (vGlyph == 1) {
    d = length(p) - 0.94;
  } else {
    vec2 q = vec2(p.x, p.y + 0.2);
    d = max(0.866 * abs(q.x) + 0.5 * q.y, -q.y) - 0.5;
  }
  if (d > 0.0) discard;
  vec3 col = vColor;
#if PASS == 2
  col = mix(col, uOutline, step(-0.26, d));
#elif PASS == 1
  col = mix(col, uAccent, step(-0.3, d));
#else
  if (vGlyph == 2) col = mix(col, col * 0.45, step(-0.16, d));
  else if (vGlyph == 1) col = mix(col, col * 0.62, step(-0.14, d));
#endif
  fragColor = vec4(col, 1.0);
#endif
}
`;
}
