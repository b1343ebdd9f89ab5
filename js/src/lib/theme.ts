// Theme-aware colours read from the host's CSS variables (JupyterLab / Notebook 7 / VS Code).
import { luminance, parseCssColor, type RGB } from "./colors";

export interface Theme {
  dark: boolean;
  background: RGB;
  foreground: RGB;
  muted: RGB;
  border: RGB;
  accent: RGB;
  font: string;
}

function cssVar(el: Element, names: string[]): string {
  const style = getComputedStyle(el);
  for (const n of names) {
    const v = style.getPropertyValue(n).trim();
    if (v) return v;
  }
  return "";
}

/** A host variable as `el` sees it, else as the document defines it (`el` may not be in the page yet). */
function hostVar(el: Element, names: string[]): string {
  return cssVar(el, names) || cssVar(document.documentElement, names) || cssVar(document.body, names);
}

/** The colour behind `el`: the first ancestor (or the page) with an opaque background. */
function backdrop(el: Element): RGB | null {
  for (let n: Element | null = el; n; n = n.parentElement) {
    const v = getComputedStyle(n).backgroundColor;
    const m = v.match(/rgba?\(([^)]+)\)/);
    const alpha = m ? Number(m[1].split(/[ ,/]+/).filter(Boolean)[3] ?? 1) : 1;
    if (v && v !== "transparent" && alpha > 0.5) return parseCssColor(v, [-1, -1, -1]);
  }
  return null;
}

/**
 * The host's colours. The background is the notebook's (`--jp-layout-color0` in JupyterLab and
 * Notebook 7, white in the light themes), read from `el` or, before `el` is in the page (no
 * inherited variables yet), from the document; without variables, the computed background behind
 * `el`.
 */
export function readTheme(el: Element): Theme {
  const names = ["--jp-layout-color0", "--theme-background", "--vscode-editor-background"];
  let bg = parseCssColor(hostVar(el, names), [-1, -1, -1]);
  if (bg[0] < 0) {
    // no variable: look at the page itself (prefers-color-scheme as a last resort)
    const behind = el.isConnected ? backdrop(el) : backdrop(document.body);
    const prefersDark = typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
    bg = behind && behind[0] >= 0 ? behind : prefersDark ? [0.11, 0.11, 0.12] : [1, 1, 1];
  }
  const dark = luminance(bg) < 0.45;
  const fg = parseCssColor(
    hostVar(el, ["--jp-ui-font-color1", "--vscode-editor-foreground"]),
    dark ? [0.9, 0.9, 0.9] : [0.13, 0.13, 0.13],
  );
  const muted = parseCssColor(hostVar(el, ["--jp-ui-font-color2"]), dark ? [0.62, 0.62, 0.62] : [0.45, 0.45, 0.45]);
  const border = parseCssColor(
    hostVar(el, ["--jp-border-color2", "--jp-border-color1"]),
    dark ? [0.3, 0.3, 0.3] : [0.87, 0.87, 0.87],
  );
  const accent = parseCssColor(hostVar(el, ["--jp-brand-color1"]), dark ? [0.4, 0.65, 1] : [0.1, 0.46, 0.82]);
  const font = hostVar(el, ["--jp-ui-font-family"]) || "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  return { dark, background: bg, foreground: fg, muted, border, accent, font };
}

/** Call `cb` when the host switches theme (JupyterLab sets data-jp-theme-* on <body>). */
export function watchTheme(cb: () => void): () => void {
  const obs = new MutationObserver(cb);
  obs.observe(document.body, {
    attributes: true,
    attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class", "style"],
  });
  const mq = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  mq?.addEventListener?.("change", cb);
  return () => {
    obs.disconnect();
    mq?.removeEventListener?.("change", cb);
  };
}
