"""Data requests from the page: columns in binary, one atlas for all thumbnails, patches, and every
failure answered as {"error": ...} (the page must never wait for a reply that will not come)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from page_msgs import js_custom
from PIL import Image

from patternviz_widget.results import SAMPLE, Key, RegionEmbedding, RegionRecord, SampleEmbedding
from patternviz_widget.widget import rpc as _rpc


def ask(w, outbox, name, **msg):
    """Send one request as the page does; return (meta, arrays) decoded from the reply messages."""
    outbox.clear()
    js_custom(w, {"kind": "pv:req", "id": "q1", "name": name, "msg": msg})
    assert outbox.sent, "no reply"
    first = outbox.sent[0][0]
    assert all(c["kind"] == "pv:rep" and c["id"] == "q1" for c, _ in outbox.sent)
    if "error" in first:
        return first, None
    specs = first["arrays"]
    whole = {n: bytearray(s["nbytes"]) for n, s in specs.items()}
    for content, bufs in outbox.sent:
        for chunk, buf in zip(content["chunks"], bufs, strict=True):
            whole[chunk["name"]][chunk["offset"] : chunk["offset"] + len(buf)] = bytes(buf)
    arrays = {
        n: np.frombuffer(bytes(b), s["dtype"]).reshape(s["shape"])
        for (n, s), b in zip(specs.items(), whole.values(), strict=True)
    }
    return first["meta"], arrays


def test_slice_sends_the_stored_embedding_and_glyphs(widget, outbox, store):
    key = Key("main", "clean", 2, "features.9")
    meta, a = ask(widget, outbox, "slice", key=str(key), threshold=0.4)
    h = store.get(key, RegionEmbedding).h
    assert a["xyz"].dtype == np.float32 and a["xyz"].shape == h.shape
    np.testing.assert_array_equal(a["xyz"], h)
    assert a["glyph"].dtype == np.uint8 and set(np.unique(a["glyph"])) <= {0, 1, 2}
    kp = widget._study.knowledge_points("features.9", epoch=2, threshold=0.4)
    np.testing.assert_array_equal(a["glyph"] > 0, kp.is_kp)
    np.testing.assert_array_equal(a["glyph"] == 1, kp.is_kp & kp.is_reliable)
    assert meta["n"] == h.shape[0] and meta["kp_total"] == int(kp.is_kp.sum())
    np.testing.assert_allclose(meta["mu"], np.eye(3))
    assert len(meta["ellipsoids"]) == 3 and meta["ellipsoids"][0]["axes"]


def test_slice_of_samples_and_a_subsample(widget, outbox, store):
    key = Key("main", "clean", 1, SAMPLE)
    _, a = ask(widget, outbox, "slice", key=str(key))
    np.testing.assert_array_equal(a["xyz"], store.get(key, SampleEmbedding).g)
    deep = Key("main", "clean", 1, "features.9")
    meta, sub = ask(widget, outbox, "slice", key=str(deep), max_points=50)
    ids = sub["ids"]
    assert ids.dtype == np.uint32 and len(ids) == 50 and (np.diff(ids.astype(int)) > 0).all()
    np.testing.assert_array_equal(sub["xyz"], store.get(deep, RegionEmbedding).h[ids])
    assert meta["subsampled_from"] == 192


def test_layout_gives_region_geometry_and_true_labels(widget, outbox, store):
    meta, a = ask(widget, outbox, "layout", layer="features.5")
    rec = store.get(Key("main", "clean", 0, "features.5"), RegionRecord)
    np.testing.assert_array_equal(a["image"], rec.image)
    np.testing.assert_array_equal(a["grid"], rec.grid)
    np.testing.assert_array_equal(a["box"], rec.box)
    np.testing.assert_array_equal(a["label"], store.probe.labels[rec.image])
    assert meta["grid_shape"] == [4, 4]


def test_atlas_is_one_png_holding_every_thumbnail(widget, outbox, store):
    meta, a = ask(widget, outbox, "atlas")
    sheet = np.asarray(Image.open(io.BytesIO(a["png"].tobytes())).convert("RGB"))
    th, tw = meta["tile"]
    assert (th, tw) == (16, 16) and meta["n"] == 12
    for i in (0, 5, 11):
        r, c = divmod(i, meta["cols"])
        np.testing.assert_array_equal(
            sheet[r * th : (r + 1) * th, c * tw : (c + 1) * tw], store.probe.thumbnails[i]
        )
    assert a["labels"].tolist() == store.probe.labels.tolist()


def test_patch_is_the_part_of_the_image_a_region_sees(widget, outbox, store):
    rec = store.get(Key("main", "clean", 0, "features.9"), RegionRecord)
    centre = int(
        np.flatnonzero((rec.image == 2) & (rec.grid[:, 0] == 1) & (rec.grid[:, 1] == 1))[0]
    )
    corner = int(
        np.flatnonzero((rec.image == 2) & (rec.grid[:, 0] == 0) & (rec.grid[:, 1] == 0))[0]
    )
    _, a = ask(widget, outbox, "patch", layer="features.9", id=centre, size=48)
    img = np.asarray(Image.open(io.BytesIO(a["png"].tobytes())).convert("RGB"))
    assert img.shape == (48, 48, 3)
    np.testing.assert_array_equal(img[24, 24], [225, 87, 89])  # image 2 is class 2: a red square
    _, b = ask(widget, outbox, "patch", layer="features.9", id=corner, size=48)
    img = np.asarray(Image.open(io.BytesIO(b["png"].tobytes())).convert("RGB"))
    np.testing.assert_array_equal(img[2, 2], [128, 128, 128])  # the corner sees grey background


def test_point_gives_class_probabilities(widget, outbox):
    meta, a = ask(widget, outbox, "point", key="main|clean|2|features.9", id=5)
    assert a["posterior"].shape == (3,) and a["posterior"].dtype == np.float32
    assert np.isclose(a["posterior"].sum(), 1, atol=1e-4)
    assert meta["discrimination"] == pytest.approx(float(a["posterior"].max()), abs=1e-6)


@pytest.mark.parametrize(
    ("name", "msg", "match"),
    [
        ("nope", {}, "Unknown request 'nope'"),
        ("slice", {"key": "garbage"}, "needs a key"),
        ("slice", {"key": "main|clean|0|conv99"}, "NotFittedError"),
        ("layout", {"layer": "conv99"}, "No regions captured for layer 'conv99'"),
        ("point", {"key": "main|clean|0|features.2", "id": 10_000}, "outside"),
        ("patch", {"layer": "features.2", "id": -3}, "outside"),
    ],
)
def test_every_failure_is_answered_with_an_error(widget, outbox, name, msg, match):
    first, arrays = ask(widget, outbox, name, **msg)
    assert arrays is None and match in first["error"]
    assert len(outbox.sent) == 1 and outbox.sent[0][1] == []


def test_dispatch_never_raises_even_on_a_broken_message(widget):
    replies = _rpc.dispatch(widget, {"id": 3, "name": None, "msg": "not a dict"})
    assert len(replies) == 1 and "error" in replies[0][0]


def test_a_widget_shown_with_ellipsoids_has_them_in_its_first_view(store):
    import patternviz_widget as pv

    w = pv.PatternViz(store, ellipsoids=True)
    try:
        head, _ = _read_first_view(w.first_view)
        shown = head["content"]["meta"]["ellipsoids"]
        meta, _ = _rpc.handle_slice(w, {"key": str(w.key), "threshold": w.threshold})
        assert shown and shown == meta["ellipsoids"]
    finally:
        w.close()


def _read_first_view(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse the `first_view` trait the way js/src/data.ts does: header, then aligned buffers."""
    import json
    import struct

    (n,) = struct.unpack("<I", blob[:4])
    head = json.loads(blob[4 : 4 + n])
    specs = head["content"]["arrays"]
    arrays = {}
    for chunk, (off, nbytes) in zip(head["content"]["chunks"], head["buffers"], strict=True):
        assert off % 8 == 0  # every typed array views its bytes in place
        s = specs[chunk["name"]]
        arrays[chunk["name"]] = np.frombuffer(blob[off : off + nbytes], s["dtype"]).reshape(
            s["shape"]
        )
    return head, arrays


def test_first_view_travels_with_the_state_and_is_dropped_after_the_first_frame(widget, outbox):
    head, a = _read_first_view(widget.first_view)
    assert head["key"] == str(widget.key) and head["threshold"] == widget.threshold
    meta, b = ask(widget, outbox, "slice", key=str(widget.key), threshold=widget.threshold)
    first = head["content"]["meta"]
    # the slice's meta, less the ellipsoids: they are off, so the first view does not compute them
    # (the full slice that follows it brings them for when they are turned on)
    assert first["ellipsoids"] is None and meta["ellipsoids"]
    assert {k: v for k, v in first.items() if k not in ("scale", "lean", "ellipsoids")} == {
        k: v for k, v in meta.items() if k != "ellipsoids"
    }
    # the points the page would have asked for, in 7 bytes a point: int16 xyz of the largest
    # |coordinate|, then one byte: class in the low 6 bits, glyph in the high 2
    p, m = a["p"], a["m"]
    assert set(a) == {"p", "m"} and p.nbytes + m.nbytes == 7 * meta["n"]
    assert p.dtype == np.int16 and p.shape == (meta["n"], 3) and m.dtype == np.uint8
    scale = first["scale"]
    assert scale == pytest.approx(np.abs(b["xyz"]).max())
    np.testing.assert_allclose(p * (scale / 32767), b["xyz"], atol=scale / 32767)
    np.testing.assert_array_equal(m & 63, b["label"])
    np.testing.assert_array_equal(m >> 6, b["glyph"])
    js_custom(widget, {"kind": "pv:first-frame", "key": head["key"]})
    assert widget.first_view == b""  # saved notebooks do not keep the points


def _points(n: int, classes: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    xyz[::7] = np.nan  # not finite: not drawn
    label = (np.arange(n) % classes).astype(np.uint8)
    return {"xyz": xyz, "label": label, "glyph": (np.arange(n) % 3).astype(np.uint8)}


def _unpack(arrays: dict[str, np.ndarray], scale: float):
    """What js/src/gl/pack.ts unpackLean reads: positions, class, glyph (3 = not drawn)."""
    if "q" in arrays:
        q = arrays["q"]
        return q[:, :3] * (scale / 32767), q[:, 3] & 255, q[:, 3] >> 8
    m = arrays["m"]
    return arrays["p"] * (scale / 32767), m & 63, m >> 6


@pytest.mark.parametrize("classes, width", [(10, 7), (64, 7), (65, 8), (256, 8)])
def test_lean_points_round_trip_in_7_bytes_up_to_64_classes_else_8(classes, width):
    n = 1000
    cols = _points(n, classes, np.random.default_rng(classes))
    meta, arrays = _rpc.lean_points({"n": n}, cols)
    assert meta["lean"] is True and sum(a.nbytes for a in arrays.values()) == width * n
    assert set(arrays) == ({"p", "m"} if width == 7 else {"q"})
    xyz, label, glyph = _unpack(arrays, meta["scale"])
    finite = np.isfinite(cols["xyz"]).all(axis=1)
    assert meta["scale"] == pytest.approx(np.abs(cols["xyz"][finite]).max())
    np.testing.assert_allclose(xyz[finite], cols["xyz"][finite], atol=meta["scale"] / 32767)
    np.testing.assert_array_equal(label, cols["label"])
    np.testing.assert_array_equal(glyph[finite], cols["glyph"][finite])
    assert (glyph[~finite] == 3).all()
