"""PatternViz: the anywidget that shows a study's embeddings and knowledge points in linked views.

Declarations first (bundle, then traits grouped by what they control); the few methods delegate to
``payload`` / ``view_state`` / ``rpc`` / ``snapshot`` of this package. No feature math happens here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from ..defaults import THRESHOLD
from ..errors import BundleMissingError
from ..results import SAMPLE, Key, RegionEmbedding, SampleEmbedding
from . import payload, rpc, snapshot
from . import view_state as ws
from .wire import BYTES_SERIALIZERS, decode_indices, encode_indices

#: The built bundle (``js/`` -> ``patternviz_widget/static/``, made by ``pip install -e .`` or npm).
_STATIC = Path(__file__).parent.parent / "static"


def _bundle(name: str, required: bool = True) -> Path | str:
    """Path of a built bundle file; our own error (naming the fix) when it is missing."""
    path = _STATIC / name
    if path.is_file():
        return path
    if not required:
        return ""
    raise BundleMissingError(
        f"The widget's JavaScript bundle {path} has not been built. Run `pip install -e .` "
        "(builds it) or `npm --prefix js install && npm --prefix js run build`."
    )


class PatternViz(anywidget.AnyWidget):
    """Linked views of a study: 3-D embedding, layer strip, epoch timeline, image view, compare.

    Every view state is a trait, synced both ways: set it from Python and the page follows; act on
    the page and the trait changes. Point data travels as binary buffers on request.

    Args:
        source: a :class:`~patternviz_widget.Study`, a ``ResultStore``, or the path of a saved study.
        **state: initial values of any trait below (``layer="features.8"``, ``epoch=3``, ...).

    Example:
        >>> w = pv.PatternViz(study, threshold=0.5)   # doctest: +SKIP
        >>> w.layer = "features.8"; w.selected_regions()["class_name"]  # doctest: +SKIP
    """

    _esm = _bundle("widget.js")
    _css = _bundle("widget.css", required=False)

    # ---- which capture the main view shows: one Key(model, condition, epoch, layer) -------------
    model = t.Unicode("main").tag(sync=True)
    condition = t.Unicode("clean").tag(sync=True)
    epoch = t.Int(0).tag(sync=True)
    layer = t.Unicode("").tag(sync=True)
    #: "regions" (regional features h = Λ f^(r) of `layer`) or "samples" (g = M f)
    feature_kind = t.Unicode("regions").tag(sync=True)

    # ---- how it is read -------------------------------------------------------------------------
    #: knowledge-point threshold τ (paper Sec. 3.4): max_c p(c|h) >= τ
    threshold = t.Float(THRESHOLD).tag(sync=True)
    #: "embedding" (one key) or "forward" (the selected images' regions from every layer)
    mode = t.Unicode("embedding").tag(sync=True)
    #: draw per-class covariance ellipsoids
    ellipsoids = t.Bool(False).tag(sync=True)

    # ---- compare: a second view with one field of the key replaced, one shared camera ----------
    #: "" (off), "condition", "model" or "epoch"
    compare = t.Unicode("").tag(sync=True)
    #: the value of that field in the right-hand view ("adversarial", "student", "3", ...)
    compare_with = t.Unicode("").tag(sync=True)

    # ---- selection, hover, image view ---------------------------------------------------------
    #: selected point ids (rows of the current layer's regions, or sample indices) as uint32 bytes
    selection = t.Bytes(b"").tag(sync=True, **BYTES_SERIALIZERS)
    #: the point under the mouse (-1: none); mirrored from the page, debounced
    hover = t.Int(-1).tag(sync=True)
    #: probe image shown in the image view
    probe_image = t.Int(0).tag(sync=True)

    # ---- display ------------------------------------------------------------------------------
    #: "auto": WebGL, Canvas2D when unavailable; where the browser's WebGL is software (SwiftShader,
    #: llvmpipe: no GPU) the points are splatted on the CPU and shown through WebGL, which is several
    #: times faster there at 10^5-10^6 points. "webgl": WebGL with the points drawn by the GPU;
    #: "webgl-cpu": WebGL with the points splatted on the CPU (same colours, sizes, glyphs, depth
    #: order and highlights; snapshots draw the points on the GPU either way); "canvas2d".
    renderer = t.Unicode("auto").tag(sync=True)
    #: the 3-D camera {azimuth, elevation, distance, target}; {} = fit to the data
    camera = t.Dict().tag(sync=True)
    height = t.Int(660).tag(sync=True)

    # ---- kernel -> page data descriptions (read-only for users) --------------------------------
    catalog = t.Dict().tag(sync=True)
    summary = t.Dict().tag(sync=True)
    #: the first view's points, travelling with the widget's state so the page draws without a
    #: request (``rpc.first_view``); emptied once the page has drawn it, so saved notebooks do not
    #: keep it
    first_view = t.Bytes(b"").tag(sync=True, **BYTES_SERIALIZERS)

    # ---- page -> kernel reports -----------------------------------------------------------------
    #: what the page draws with: "webgl", "canvas2d" ("" before the first render)
    backend = t.Unicode("").tag(sync=True)

    def __init__(self, source: Any, **state: Any) -> None:
        self._study = payload.as_study(source)
        self._kp = payload.Knowledge(self._study)
        self._summary_cache: dict = {}
        self._radius_cache: dict = {}
        self._selection_layer = ""  # the layer whose rows `selection` holds
        self._snapshots: dict[str, Any] = {}
        self._lock = threading.RLock()
        store = self._study.store
        start = ws.defaults(store)
        # an empty store (pv.Study.watch of a file not written yet): follow the default view of the
        # data as it arrives, until the user changes the view
        self._auto_view: dict | None = None if store.layers() else dict(start)
        super().__init__(
            catalog=payload.catalog(store, self._kp.rev, self._radius_cache),
            first_view=self._first_view({**start, **state}),
            **{**start, **state},
        )
        self.on_msg(self._on_page_msg)
        self._unsubscribe = store.observe(self._on_store_put)
        self._refresh_summary()

    def _first_view(self, state: dict[str, Any]) -> bytes:
        """The points the page shows first (b"" when they cannot be read: the page asks then)."""
        get = lambda name: state.get(name, self.trait_defaults(name))  # noqa: E731
        layer = SAMPLE if get("feature_kind") == "samples" else str(get("layer"))
        try:
            key = Key(
                model=get("model"), condition=get("condition"), epoch=int(get("epoch")), layer=layer
            )
            if not self._study.store.has(
                key, SampleEmbedding if key.is_sample else RegionEmbedding
            ):
                return b""
            return rpc.first_view(
                self, key, float(get("threshold")), ellipsoids=bool(get("ellipsoids"))
            )
        except Exception:  # noqa: BLE001 - the page falls back to its request, which reports errors
            return b""

    # ---- validation (unknown names list the closest valid ones) ---------------------------------
    @t.validate("layer")
    def _check_layer(self, proposal: t.Bunch) -> str:
        return ws.check_name(proposal.value, self._study.store.layers(), "layer")

    @t.validate("model")
    def _check_model(self, proposal: t.Bunch) -> str:
        return ws.check_name(proposal.value, self._study.store.models(), "model")

    @t.validate("condition")
    def _check_condition(self, proposal: t.Bunch) -> str:
        return ws.check_name(proposal.value, self._study.store.conditions(), "condition")

    @t.validate("epoch")
    def _check_epoch(self, proposal: t.Bunch) -> int:
        eps = [str(e) for e in self._study.store.epochs()]
        return int(ws.check_name(str(int(proposal.value)), eps, "epoch"))

    @t.validate("feature_kind")
    def _check_kind(self, proposal: t.Bunch) -> str:
        return ws.check_choice(proposal.value, ws.FEATURE_KINDS, "feature_kind")

    @t.validate("mode")
    def _check_mode(self, proposal: t.Bunch) -> str:
        return ws.check_choice(proposal.value, ws.MODES, "mode")

    @t.validate("compare")
    def _check_compare(self, proposal: t.Bunch) -> str:
        return ws.check_choice(proposal.value, ws.COMPARE, "compare")

    @t.validate("renderer")
    def _check_renderer(self, proposal: t.Bunch) -> str:
        return ws.check_choice(proposal.value, ws.RENDERERS, "renderer")

    @t.validate("threshold")
    def _check_threshold(self, proposal: t.Bunch) -> float:
        return ws.check_threshold(proposal.value)

    @t.validate("compare_with")
    def _check_compare_with(self, proposal: t.Bunch) -> str:
        return ws.check_compare_with(self._study.store, self.compare, self.key, proposal.value)

    @t.validate("camera")
    def _check_camera(self, proposal: t.Bunch) -> dict:
        return ws.check_camera(proposal.value)

    @t.validate("height")
    def _check_height(self, proposal: t.Bunch) -> int:
        return ws.check_height(proposal.value)

    @t.validate("selection")
    def _check_selection(self, proposal: t.Bunch) -> bytes:
        value = proposal.value
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = decode_indices(value)
        return encode_indices(value)  # canonical: sorted, unique uint32

    @t.validate("probe_image")
    def _check_probe_image(self, proposal: t.Bunch) -> int:
        return ws.check_index(proposal.value, self.catalog.get("num_images", 0), "probe_image")

    # ---- reactions -------------------------------------------------------------------------------
    @t.observe("model", "condition", "feature_kind", "layer")
    def _snap_epoch(self, change: t.Bunch) -> None:
        """Keep `epoch` on one that exists for the new (model, condition, layer)."""
        eps = ws.epochs_for(
            self._study.store, self.model, self.condition, self.feature_kind, self.layer
        )
        if eps and self.epoch not in eps:
            self.epoch = min(eps, key=lambda e: (abs(e - self.epoch), -e))
        if change.name in ("model", "condition"):
            self._refresh_summary()

    @t.observe("selection")
    def _note_selection_layer(self, change: t.Bunch) -> None:
        self._selection_layer = self.key.layer

    @t.observe("layer", "feature_kind")
    def _map_selection(self, change: t.Bunch) -> None:
        """Keep the selection on the same image area when the rows change meaning (new layer)."""
        old, new = self._selection_layer, self.key.layer
        if not self.selection or not old or old == new:
            self._selection_layer = new
            return
        ids = ws.map_selection(self._study.store, old, new, self.selected_ids)
        self._selection_layer = new
        self.selection = encode_indices(ids)

    @t.observe("compare")
    def _default_compare_with(self, change: t.Bunch) -> None:
        valid = ws.compare_values(self._study.store, self.compare, self.key)
        if self.compare and self.compare_with not in valid:
            self.compare_with = valid[0] if valid else ""

    @t.observe("threshold")
    def _on_threshold(self, change: t.Bunch) -> None:
        self._refresh_summary()

    def _refresh_summary(self) -> None:
        try:
            self.summary = ws.kp_summary(
                self._study,
                self._kp,
                self.model,
                self.condition,
                self.threshold,
                self._summary_cache,
            )
        except Exception as e:  # noqa: BLE001 - a summary failure must not break the widget
            self.summary = {"error": f"{type(e).__name__}: {e}", "layers": {}}

    def _on_store_put(self, key: Key) -> None:
        """Live updates: a new epoch/layer/condition appears without re-displaying the widget."""
        with self._lock:
            self._kp.invalidate(key)
            self.catalog = payload.catalog(self._study.store, self._kp.rev, self._radius_cache)
            if self._auto_view is not None:
                self._follow_default_view()
            if key.model == self.model and key.condition == self.condition:
                self._refresh_summary()

    def _follow_default_view(self) -> None:
        """Move to the store's default view while the view is still the last one set this way."""
        auto = self._auto_view or {}
        if any(getattr(self, name) != value for name, value in auto.items()):
            self._auto_view = None  # the user moved the view: leave it alone from now on
            return
        view = ws.defaults(self._study.store)
        if view != auto:
            with self.hold_trait_notifications():
                for name, value in view.items():
                    setattr(self, name, value)
            self._auto_view = view

    def _on_page_msg(self, _: Any, content: Any, buffers: list) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        if kind == "pv:req":
            for msg, bufs in rpc.dispatch(self, content):
                self.send(msg, bufs)
        elif kind == "pv:snapshot-reply":
            snapshot.receive(self, content, buffers)
        elif kind == "pv:first-frame" and self.first_view:
            self.first_view = b""

    # ---- reading the state from Python ------------------------------------------------------------
    @property
    def key(self) -> Key:
        """The :class:`Key` the main view shows."""
        layer = SAMPLE if self.feature_kind == "samples" else self.layer
        return Key(model=self.model, condition=self.condition, epoch=self.epoch, layer=layer)

    @property
    def selected_ids(self) -> np.ndarray:
        """The selection as uint32 ids (rows of the current layer's regions, or sample indices)."""
        return decode_indices(self.selection)

    def select(self, ids: Any) -> PatternViz:
        """Set the selection to ``ids`` (any integer sequence of point ids of the current view:
        rows of the layer's regions, or sample indices); returns self. Ids past the view's points
        raise InputError."""
        data = encode_indices(ids)
        ws.check_ids(self._study.store, self.key, decode_indices(data))
        self.selection = data
        return self

    def selected_regions(self) -> dict[str, np.ndarray]:
        """Return the selected points as a tidy table: a dict of equal-length numpy columns.

        Columns: region (row id), image (probe index), data_index (index in the user's data), row,
        col (grid position), label and class_name (true class), predicted and predicted_name,
        discrimination (max_c p(c|h)), is_kp, is_reliable. ``pandas.DataFrame(w.selected_regions())``
        turns it into a DataFrame (pandas is not a dependency).
        """
        return ws.selected_table(self._study, self._kp, self.key, self.selected_ids, self.threshold)

    def export(self, path: str | Path | None = None, kind: str = "view", **kwargs: Any) -> Any:
        """Write what the view shows as a matplotlib figure (PNG/SVG/PDF, no browser); see
        :func:`patternviz_widget.widget.export.export_view`. Returns the path (or the Figure)."""
        from .export import export_view

        return export_view(self, path, kind=kind, **kwargs)

    def snapshot(self, path: str | Path, timeout: float = 10.0) -> Path:
        """Write the PNG the displayed page draws right now to ``path``; returns the path."""
        from .export import snapshot_view

        return snapshot_view(self, path, timeout=timeout)

    def _request_snapshot(self, timeout: float = 10.0) -> bytes:
        """Return the PNG bytes of what the displayed view shows (asks the page; waits ≤ timeout s).

        Raises WidgetTimeoutError when no page answers (the widget is not displayed, or the page
        is closed) within ``timeout`` seconds.
        """
        return snapshot.request(self, timeout)

    def close(self) -> None:
        """Close the widget and stop following its store."""
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe = None
        super().close()
