"""What the display and scrub notebooks import in their kernel (kept out of the cells, so that the
timed cells stay one line): the study, the floor widget, the previous bundle, and show/close."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import anywidget
import jscatter  # noqa: F401  (the cells use it)
import numpy as np  # noqa: F401
import pandas as pd
import torch  # noqa: F401  (a study session has torch loaded already)
import traitlets

import patternviz_widget as pv
import patternviz_widget.pipeline.embed  # noqa: F401  (what knowledge_points imports on first use)

from .ours import LAYER, make_store

__all__ = [
    "LAYER",
    "LAYERS",
    "Floor",
    "close_shown",
    "jscatter",
    "old_widget",
    "plot",
    "pv",
    "setup",
    "show",
]

#: the layers of a multi-layer store (``setup(..., layers=3)``), low to high; LAYER is the middle one
LAYERS = ("features.4", LAYER, "features.12")

FLOOR_ESM = """
export default { render({ model, el }) {
  const w = model.get("width"), h = model.get("height"), d = window.devicePixelRatio || 1;
  const c = document.createElement("canvas");
  c.width = Math.round(w * d); c.height = Math.round(h * d);
  c.style.width = w + "px"; c.style.height = h + "px";
  el.appendChild(c);
  const gl = c.getContext("webgl2");
  const sh = (type, src) => { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); return s; };
  const p = gl.createProgram();
  gl.attachShader(p, sh(gl.VERTEX_SHADER, "#version 300 es\\nuniform vec2 off; void main() { float i = float(gl_VertexID);"
    + " gl_Position = vec4(fract(i * 0.618034) * 2.0 - 1.0 + off.x, fract(i * 0.414214) * 2.0 - 1.0, 0.0, 1.0); gl_PointSize = 1.0; }"));
  gl.attachShader(p, sh(gl.FRAGMENT_SHADER, "#version 300 es\\nprecision mediump float; out vec4 o;"
    + " void main() { o = vec4(0.2, 0.4, 0.8, 1.0); }"));
  gl.linkProgram(p);
  const off = gl.getUniformLocation(p, "off");
  let x = 0, raf = 0;
  const draw = () => {
    raf = 0;
    gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(p); gl.uniform2f(off, x, 0); gl.drawArrays(gl.POINTS, 0, model.get("n"));
  };
  // a drag redraws every point, offset by the pointer: the floor of one frame of n points
  c.addEventListener("pointermove", (e) => { if (e.buttons) { x = (e.offsetX / w) * 0.1; if (!raf) raf = requestAnimationFrame(draw); } });
  raf = requestAnimationFrame(draw);
} };
"""


class Floor(anywidget.AnyWidget):
    """The floor of Jupyter's display path: a widget with no data that draws ``n`` 1-px points."""

    _esm = FLOOR_ESM
    n = traitlets.Int(0).tag(sync=True)
    width = traitlets.Int(600).tag(sync=True)
    height = traitlets.Int(400).tag(sync=True)


PatternVizOld: Any = None
_shown: list = []


def _add_layers(store: Any, epochs: int) -> None:
    """Give the store the layers of LAYERS: the other two are LAYER's points turned and scaled
    (each its own shape and radius, so a layer switch reframes and redraws every point)."""
    from patternviz_widget.results import Key
    from patternviz_widget.results.records import RegionEmbedding, RegionRecord

    for j, name in enumerate(LAYERS):
        if name == LAYER:
            continue
        a = 0.9 * (j - 1)
        rot = np.array(
            [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], np.float32
        )
        for e in range(epochs):
            k = Key(epoch=e, layer=LAYER)
            rec, emb = store.get(k, RegionRecord), store.get(k, RegionEmbedding)
            h = (emb.h @ rot * (0.6 + 0.4 * j)).astype(np.float32)
            store.put(Key(epoch=e, layer=name), dataclasses.replace(rec))
            store.put(
                Key(epoch=e, layer=name),
                dataclasses.replace(
                    emb, h=h, mean_strength=float(np.linalg.norm(h, axis=1).mean())
                ),
            )
    store.meta["layers"] = list(LAYERS)


def setup(
    n: int, epochs: int, old: str = "", layers: int = 1
) -> tuple[Any, pd.DataFrame, int, float]:
    """(store, x/y/class frame for jupyter-scatter, n, our point size in CSS px); prints the bundle
    sizes as ``BUNDLES {...}``. ``layers`` 3: the store holds the three layers of LAYERS."""
    global PatternVizOld
    from jscatter.widget import JupyterScatter

    from patternviz_widget.results import Key
    from patternviz_widget.results.records import RegionEmbedding, RegionRecord

    store = make_store(n, epochs=epochs)
    if layers > 1:
        _add_layers(store, epochs)
    k = Key(epoch=0, layer=LAYER)
    xyz = store.get(k, RegionEmbedding).h
    lab = store.probe.labels[store.get(k, RegionRecord).image]
    df = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "c": pd.Categorical(lab)})
    if old:
        # the previous page, and the previous kernel side: no first view in the initial state
        PatternVizOld = type(
            "PatternVizOld",
            (pv.PatternViz,),
            {"_esm": Path(old).read_text(), "_first_view": lambda self, state: b""},
        )
    size = max(2.2, min(9.0, 14 - 2 * math.log10(max(len(xyz), 1))))  # js/src/gl/types.ts

    def nbytes(x: Any) -> int:
        return len(str(x)) if x else 0

    print(
        "BUNDLES "
        + json.dumps(
            {
                "ours": nbytes(pv.PatternViz._esm) + nbytes(pv.PatternViz._css),
                "old": (nbytes(Path(old).read_text()) + nbytes(pv.PatternViz._css)) if old else 0,
                "jscatter": nbytes(JupyterScatter._esm) + nbytes(JupyterScatter._css),
                "floor": nbytes(Floor._esm),
            }
        )
    )
    print("ready", len(xyz))
    return store, df, len(xyz), size


def old_widget(*args: Any, **kwargs: Any) -> Any:
    """Our widget drawn by the previous bundle given to :func:`setup`."""
    return PatternVizOld(*args, **kwargs)


def show(w: Any) -> Any:
    _shown.append(w)
    return w


def close_shown() -> None:
    """Close the widget shown last (frees its WebGL context before the next one is timed)."""
    while _shown:
        _shown.pop().close()


def plot() -> list[int]:
    """Our plot area in CSS px, measured by the warm-up display (else 600 x 400)."""
    p = Path("plot.json")
    return json.loads(p.read_text()) if p.exists() else [600, 400]
