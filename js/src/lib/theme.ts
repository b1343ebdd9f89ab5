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

export function readTheme(el: Element): Theme {
  let bg = parseCssColor(cssVar(el, ["--jp-layout-color0", "--theme-background", "--vscode-editor-background"]), [-1, -1, -1]);
  if (bg[0] < 0) {
    // no variable: look at the page itself (prefers-color-scheme as a last resort)
    const body = parseCssColor(getComputedStyle(document.body).backgroundColor, [-1, -1, -1]);
    const prefersDark = typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
    bg = body[0] >= 0 && getComputedStyle(document.body).backgroundColor !== "rgba(0, 0, 0, 0)" ? body : prefersDark ? [0.11, 0.11, 0.12] : [1, 1, 1];
  }
  const dark = luminance(bg) < 0.45;
  const fg = parseCssColor(cssVar(el, ["--jp-ui-font-color1", "--vscode-editor-foreground"]), dark ? [0.9, 0.9, 0.9] : [0.13, 0.13, 0.13]);
  const muted = parseCssColor(cssVar(el, ["--jp-ui-font-color2"]), dark ? [0.62, 0.62, 0.62] : [0.45, 0.45, 0.45]);
  const border = parseCssColor(cssVar(el, ["--jp-border-color2", "--jp-border-color1"]), dark ? [0.3, 0.3, 0.3] : [0.87, 0.87, 0.87]);
  const accent = parseCssColor(cssVar(el, ["--jp-brand-color1"]), dark ? [0.4, 0.65, 1] : [0.1, 0.46, 0.82]);
  const font = cssVar(el, ["--jp-ui-font-family"]) || "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  return { dark, background: bg, foreground: fg, muted, border, accent, font };
}

/** Call `cb` when the host switches theme (JupyterLab sets data-jp-theme-* on <body>). */
export function watchTheme(cb: () => void): () => void {
  const obs = new MutationObserver(cb);
  obs.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class", "style"] });
  const mq = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  mq?.addEventListener?.("change", cb);
  return () => {
    obs.disconnect();
    mq?.removeEventListener?.("change", cb);
  };
}
