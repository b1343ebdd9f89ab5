// Point shaders: one THREE.Points draws every point; the glyph (the paper's reliable circle,
// unreliable triangle, non-discriminative square) is cut from the point sprite in the fragment shader.
// Attribute `cidx` indexes the palette (class, or layer in forward mode); `flag` bit 0 = selected.

export const MAX_PALETTE = 24;

export const pointVertex = /* glsl */ `
attribute float cidx;
attribute float glyph;
attribute float flag;
uniform vec3 palette[${MAX_PALETTE}];
uniform float paletteSize;
uniform float uSize;
uniform float uPixelRatio;
uniform int uHover;
uniform float uHasSelection;
uniform vec3 uBg;
varying vec3 vColor;
varying float vGlyph;
varying float vState;
void main() {
  vec4 mv = modelViewMatrix * vec4(position, 1.0);
  gl_Position = projectionMatrix * mv;
  int ci = int(mod(cidx + 0.5, paletteSize));
  vec3 c = palette[ci];
  float size = uSize;
  vGlyph = glyph;
  if (glyph < 0.5) { c = mix(c, uBg, 0.42); size *= 0.78; }
  else if (glyph > 1.5) { size *= 1.18; }
  float selected = mod(flag, 2.0);
  vState = 0.0;
  if (uHasSelection > 0.5) {
    if (selected > 0.5) { size *= 1.3; vState = 1.0; }
    else { c = mix(c, uBg, 0.8); size *= 0.8; }
  }
  if (gl_VertexID == uHover) { size = max(size * 2.0, 12.0); vState = 2.0; }
  vColor = c;
  gl_PointSize = size * uPixelRatio;
}
`;

export const pointFragment = /* glsl */ `
uniform vec3 uOutline;
uniform vec3 uAccent;
varying vec3 vColor;
varying float vGlyph;
varying float vState;
void main() {
  vec2 p = gl_PointCoord * 2.0 - 1.0;
  p.y = -p.y;
  float d;
  if (vGlyph < 0.5) {
    d = max(abs(p.x), abs(p.y)) - 0.8;
  } else if (vGlyph < 1.5) {
    d = length(p) - 0.94;
  } else {
    vec2 q = vec2(p.x, p.y + 0.2);
    d = max(0.866 * abs(q.x) + 0.5 * q.y, -q.y) - 0.5;
  }
  if (d > 0.0) discard;
  vec3 col = vColor;
  if (vState > 1.5) {
    col = mix(col, uOutline, step(-0.26, d));
  } else if (vState > 0.5) {
    col = mix(col, uAccent, step(-0.3, d));
  } else if (vGlyph > 1.5) {
    col = mix(col, col * 0.45, step(-0.16, d));
  } else if (vGlyph > 0.5) {
    col = mix(col, col * 0.62, step(-0.14, d));
  }
  gl_FragColor = vec4(col, 1.0);
}
`;
