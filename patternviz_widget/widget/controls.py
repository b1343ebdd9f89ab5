"""``pv.dashboard(study)``: the widget with kernel-side controls and bqplot charts, all linked.

* τ (knowledge-point threshold) is linked to ``PatternViz.threshold``: knowledge points are
  recounted at once, nothing is refitted.
* T (temperature) and λ_mi refit the embedding (``study.embed``); ε reruns the attack
  (``study.attack``, then projects it); the sample budget J (partner images sampled per step in the
  region fit, the official code's ``kl_sample_num``) refits too. Each runs on the kernel
  with a progress indicator, and the views update from the store when it is done.
* bqplot charts of knowledge points per layer, per epoch and per condition/model; clicking a bar
  or a point sets ``layer`` / ``epoch`` / ``condition`` / ``model`` of the widget.

Callbacks are registered with ``observe(..., names=[...])`` and run inside an ``Output`` so that
errors show in the notebook instead of vanishing into the kernel log.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import bqplot as bq
import ipywidgets as ipw

from ..defaults import TEMPERATURE
from ..results import RegionEmbedding
from .patternviz import PatternViz

ACCENT, MUTED = "#1976d2", "#9db7d8"


class Dashboard(ipw.VBox):
    """The composed dashboard. ``viz`` is the PatternViz; ``sliders``, ``charts`` and ``out`` are
    the parts a test or a user may reach into."""

    def __init__(self, study: Any, embed_kwargs: dict | None = None, **state: Any) -> None:
        self.embed_kwargs = dict(embed_kwargs or {})
        self.viz = PatternViz(study, **state)
        self.study = self.viz._study
        self.out = ipw.Output(layout=ipw.Layout(max_height="160px", overflow="auto"))
        self.status = ipw.HTML(layout=ipw.Layout(min_width="260px"))
        self.progress = ipw.IntProgress(
            value=0,
            min=0,
            max=1,
            bar_style="info",
            layout=ipw.Layout(width="180px", visibility="hidden"),
        )
        self.sliders = self._make_sliders()
        self.charts = self._make_charts()
        controls = ipw.VBox([
            ipw.HTML("<b>Kernel-side parameters</b>"),
            *self.sliders.values(),
            ipw.HBox([self.progress, self.status]),
        ], layout=ipw.Layout(width="420px", padding="4px 8px"))  # fmt: skip
        charts = ipw.HBox(list(self.charts.values()), layout=ipw.Layout(flex="1", overflow="auto"))
        super().__init__([self.viz, ipw.HBox([controls, charts]), self.out])
        self.add_class("pv-dashboard")
        self.viz.observe(
            self._on_view, names=["summary", "layer", "epoch", "condition", "model", "feature_kind"]
        )
        self._redraw()

    # ---- controls --------------------------------------------------------------------------------
    def _make_sliders(self) -> dict[str, ipw.Widget]:
        style = {"description_width": "90px"}
        lay = ipw.Layout(width="380px")
        tau = ipw.FloatSlider(value=self.viz.threshold, min=0.05, max=0.99, step=0.01, description="τ threshold",
                              continuous_update=False, style=style, layout=lay, readout_format=".2f")  # fmt: skip
        ipw.link((tau, "value"), (self.viz, "threshold"))
        params = _fit_params(self.study.store)
        temp = ipw.FloatSlider(value=float(params.get("temperature", TEMPERATURE)), min=0.5, max=10, step=0.5, description="T (temp.)",
                               continuous_update=False, style=style, layout=lay)  # fmt: skip
        lam = ipw.FloatSlider(value=float(params.get("lambda_mi", 0.1)), min=0.0, max=1.0, step=0.05, description="λ_mi",
                              continuous_update=False, style=style, layout=lay)  # fmt: skip
        eps = ipw.FloatSlider(value=8 / 255, min=0.0, max=0.3, step=0.005, description="attack ε",
                              continuous_update=False, style=style, layout=lay, readout_format=".3f")  # fmt: skip
        budget = ipw.IntSlider(value=int(params.get("partners", 100)), min=10, max=200, step=5, description="sample budget J",
                               continuous_update=False, style=style, layout=lay)  # fmt: skip
        for w, name in ((temp, "refit"), (lam, "refit"), (budget, "refit"), (eps, "attack")):
            w.observe(
                self._guarded(self._refit if name == "refit" else self._attack), names=["value"]
            )
        return {
            "threshold": tau,
            "temperature": temp,
            "lambda_mi": lam,
            "eps": eps,
            "budget": budget,
        }

    def _guarded(self, fn: Callable[[], None]) -> Callable[[Any], None]:
        def callback(change: Any) -> None:
            self._busy(True, "recomputing on the kernel …")
            t0 = time.perf_counter()
            if self._shown(fn):
                self._busy(False, f"done in {time.perf_counter() - t0:.1f} s")
            else:
                self._busy(False, "<span style='color:#c62828'>failed — see the error below</span>")

        return callback

    def _shown(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` with its output in ``self.out``; an error is shown there (not lost)."""
        with self.out:
            try:
                fn()
                return True
            except Exception:  # noqa: BLE001 - shown to the user, not swallowed
                self.out.append_stderr(traceback.format_exc())
                return False

    def _busy(self, on: bool, text: str) -> None:
        self.progress.layout.visibility = "visible" if on else "hidden"
        self.progress.bar_style = "info"
        self.progress.value = 0 if on else 1
        self.status.value = f"<span style='color:#666'>{text}</span>"
        for w in self.sliders.values():
            if w is not self.sliders["threshold"]:
                w.disabled = on

    def _refit(self) -> None:
        """Refit every embedding with the sliders' T, λ_mi and J (study.embed, overwrite)."""
        self.study.embed(
            progress=True,
            overwrite=True,
            temperature=float(self.sliders["temperature"].value),
            lambda_mi=float(self.sliders["lambda_mi"].value),
            partners=int(self.sliders["budget"].value),
            **self.embed_kwargs,
        )

    def _attack(self) -> None:
        """Rerun the attack at the slider's ε (study.attack), then project it (study.embed)."""
        if self.study.model is None:
            raise NotImplementedError(
                "study.attack needs the study's model (a loaded study has none)."
            )
        self.study.attack(eps=float(self.sliders["eps"].value), epoch=self.viz.epoch, progress=True)
        self.study.embed(progress=True, **self.embed_kwargs)

    # ---- charts -----------------------------------------------------------------------------------
    def _make_charts(self) -> dict[str, bq.Figure]:
        def fig(title: str, marks: list, sx: Any, sy: Any, xlabel: str) -> bq.Figure:
            ax = bq.Axis(scale=sx, label=xlabel, tick_rotate=-20 if xlabel == "layer" else 0)
            ay = bq.Axis(scale=sy, side="left", label="KP / image", tick_format=".1f")
            return bq.Figure(marks=marks, axes=[ax, ay], title=title, fig_margin={"top": 30, "bottom": 50, "left": 50, "right": 10},
                             layout=ipw.Layout(width="300px", height="230px"), title_style={"font-size": "12px"})  # fmt: skip

        sx, sy = bq.OrdinalScale(), bq.LinearScale(min=0)
        self.layer_bars = bq.Bars(x=[], y=[], scales={"x": sx, "y": sy}, colors=[MUTED], padding=0.25,
                                  tooltip=bq.Tooltip(fields=["x", "y"], formats=["", ".2f"]))  # fmt: skip
        self.layer_bars.on_element_click(self._click_layer)
        ex, ey = bq.LinearScale(), bq.LinearScale(min=0)
        self.epoch_line = bq.Lines(x=[], y=[], scales={"x": ex, "y": ey}, colors=[ACCENT])
        self.epoch_dots = bq.Scatter(x=[], y=[], scales={"x": ex, "y": ey}, colors=[ACCENT], default_size=60,
                                     tooltip=bq.Tooltip(fields=["x", "y"], formats=["", ".2f"]))  # fmt: skip
        self.epoch_dots.on_element_click(self._click_epoch)
        cx, cy = bq.OrdinalScale(), bq.LinearScale(min=0)
        self.cond_bars = bq.Bars(x=[], y=[], scales={"x": cx, "y": cy}, colors=[MUTED], padding=0.3,
                                 tooltip=bq.Tooltip(fields=["x", "y"], formats=["", ".2f"]))  # fmt: skip
        self.cond_bars.on_element_click(self._click_condition)
        return {
            "per_layer": fig("Knowledge points per layer", [self.layer_bars], sx, sy, "layer"),
            "per_epoch": fig(
                "… per epoch (this layer)", [self.epoch_line, self.epoch_dots], ex, ey, "epoch"
            ),
            "per_condition": fig("… per condition / model", [self.cond_bars], cx, cy, ""),
        }

    def _on_view(self, change: Any) -> None:
        self._shown(self._redraw)

    def _redraw(self) -> None:
        v = self.viz
        rows = v.summary.get("layers", {})
        layers = list(rows)
        per_layer = [_at(rows[name], v.epoch) for name in layers]
        with self.layer_bars.hold_sync():
            self.layer_bars.x = layers
            self.layer_bars.y = [0.0 if y is None else y for y in per_layer]
            self.layer_bars.colors = [
                ACCENT if (name == v.layer and v.feature_kind == "regions") else MUTED
                for name in layers
            ]
        row = rows.get(v.layer, {"epochs": [], "total": []})
        eps = [e for e, t in zip(row["epochs"], row["total"], strict=True) if t is not None]
        tot = [t for t in row["total"] if t is not None]
        with self.epoch_line.hold_sync(), self.epoch_dots.hold_sync():
            self.epoch_line.x, self.epoch_line.y = eps, tot
            self.epoch_dots.x, self.epoch_dots.y = eps, tot
            self.epoch_dots.colors = [ACCENT]
            self.epoch_dots.selected = [eps.index(v.epoch)] if v.epoch in eps else None
        names, values = self._per_condition()
        with self.cond_bars.hold_sync():
            self.cond_bars.x = [label for label, _ in names]
            self.cond_bars.y = values
            current = {("condition", v.condition), ("model", v.model)}
            self.cond_bars.colors = [ACCENT if what in current else MUTED for _, what in names]
        self._cond_targets = [what for _, what in names]

    def _per_condition(self) -> tuple[list[tuple[str, tuple[str, str]]], list[float]]:
        """KP/image of the current layer and epoch for each condition (this model) and model (clean)."""
        v, store = self.viz, self.study.store
        out: list[tuple[str, tuple[str, str]]] = []
        vals: list[float] = []
        if v.feature_kind != "regions" or not v.layer:
            return out, vals
        found = store.find(RegionEmbedding, layer=v.layer, epoch=v.epoch)
        for key in found:
            if key.model == v.model:
                label, what = key.condition, ("condition", key.condition)
            elif key.condition == v.condition:
                label, what = f"model {key.model}", ("model", key.model)
            else:
                continue
            kp = v._kp.get(key, v.threshold)
            out.append((label, what))
            vals.append(float(kp.mean_total))
        return out, vals

    def _index(self, event: dict, n: int) -> int | None:
        i = int((event.get("data") or {}).get("index", -1))
        return i if 0 <= i < n else None

    def _click_layer(self, mark: Any, event: dict) -> None:
        i = self._index(event, len(self.layer_bars.x))
        if i is None:
            return
        layer = str(self.layer_bars.x[i])

        def select() -> None:
            self.viz.feature_kind = "regions"
            self.viz.layer = layer

        self._shown(select)

    def _click_epoch(self, mark: Any, event: dict) -> None:
        i = self._index(event, len(self.epoch_dots.x))
        if i is not None:
            epoch = int(self.epoch_dots.x[i])
            self._shown(lambda: setattr(self.viz, "epoch", epoch))

    def _click_condition(self, mark: Any, event: dict) -> None:
        i = self._index(event, len(self._cond_targets))
        if i is not None:
            field, value = self._cond_targets[i]
            self._shown(lambda: setattr(self.viz, field, value))


def _at(row: dict, epoch: int) -> float | None:
    return row["total"][row["epochs"].index(epoch)] if epoch in row.get("epochs", []) else None


def _fit_params(store: Any) -> dict:
    """Hyper-parameters of the stored region fit (the sliders start there)."""
    for key in store.find(RegionEmbedding):
        params = store.get(key, RegionEmbedding).params or {}
        if params:
            return dict(params)
    return {}


def dashboard(study: Any, embed_kwargs: dict | None = None, **state: Any) -> Dashboard:
    """Return the PatternViz of ``study`` composed with kernel-side sliders and bqplot charts.

    Args:
        study: a :class:`~patternviz_widget.Study`, a ``ResultStore`` or the path of a saved study.
        embed_kwargs: extra keyword arguments of every ``study.embed`` the sliders run (e.g.
            ``{"fast": True}`` for demos).
        **state: initial traits of the widget (``layer=...``, ``threshold=...``).

    Returns:
        A :class:`Dashboard` (an ``ipywidgets.VBox``): ``.viz`` is the widget, ``.sliders`` the
        controls (τ, T, λ_mi, ε, sample budget), ``.charts`` the bqplot figures.

    Example:
        >>> d = pv.dashboard(study)   # doctest: +SKIP
        >>> d.viz.layer               # doctest: +SKIP
    """
    return Dashboard(study, embed_kwargs=embed_kwargs, **state)
