"""Request handlers the page calls for data (``js/src/rpc.ts``), and the chunked reply format.

Protocol (custom widget messages):

* page -> kernel: ``{"kind": "pv:req", "id": str, "name": str, "msg": {...}}``
* kernel -> page: one or more ``{"kind": "pv:rep", "id", "part", "parts", "chunks": [{name, offset}],
  "meta": {...}, "arrays": {name: {dtype, shape, nbytes}}}`` messages (``meta``/``arrays`` in part 0
  only), each with ``len(chunks)`` binary buffers and at most about :data:`MAX_MESSAGE_BYTES`; or one
  ``{"kind": "pv:rep", "id", "part": 0, "parts": 1, "error": "..."}``.

Every handler is wrapped: any exception becomes ``{"error": ...}`` so the page never waits for a reply
that will not come.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError
from ..results import SAMPLE, Key
from . import payload
from .wire import to_wire_array

#: Upper bound of one reply message (Jupyter websocket messages over ~10 MB have failed).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

Handler = Callable[[Any, dict[str, Any]], tuple[dict[str, Any], dict[str, np.ndarray]]]


def _key(msg: dict[str, Any]) -> Key:
    try:
        return Key.parse(str(msg["key"]))
    except (KeyError, ValueError):
        raise InputError(
            f"A request needs a key 'model|condition|epoch|layer', got {msg.get('key')!r}."
        ) from None


def _threshold(w: Any, msg: dict[str, Any]) -> float:
    return float(msg.get("threshold", w.threshold))


def handle_slice(w: Any, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Point columns of one key: xyz float32 N×3, glyph uint8, discrimination float32, predicted."""
    max_points = msg.get("max_points")
    return payload.point_slice(
        w._study, w._kp, _key(msg), _threshold(w, msg), int(max_points) if max_points else None
    )


def handle_layout(w: Any, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Region geometry of one layer (the same in every key): image uint32, grid int16, box float32."""
    return payload.layout(w._study.store, str(msg.get("layer", SAMPLE)))


def handle_atlas(w: Any, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """All probe thumbnails as ONE PNG atlas (+ labels), not one message per image."""
    return payload.atlas(w._study.store)


def handle_point(w: Any, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Details of one point for the tooltip: class probabilities, KP status, strength."""
    key = _key(msg)
    i = int(msg["id"])
    f = payload._kp_fields(w._kp.get(key, _threshold(w, msg)))
    n = f["posterior"].shape[0]
    if not 0 <= i < n:
        raise InputError(f"Point id {i} is outside [0, {n}) for {key}.")
    meta = {
        "key": str(key),
        "id": i,
        "predicted": int(f["predicted"][i]),
        "discrimination": float(f["discrimination"][i]),
        "is_kp": bool(f["is_kp"][i]),
        "is_reliable": bool(f["is_reliable"][i]),
    }
    strength = f.get("strength")
    if strength is not None and strength.size == n:
        meta["strength"] = float(strength[i])
    return meta, {"posterior": np.asarray(f["posterior"][i], np.float32)}


def handle_patch(w: Any, msg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """PNG bytes of the image patch one region sees (from the region -> input box)."""
    layer = str(msg.get("layer", SAMPLE))
    i = int(msg["id"])
    _, arrays = payload.layout(w._study.store, layer)
    n = arrays["image"].shape[0]
    if not 0 <= i < n:
        raise InputError(f"Region id {i} is outside [0, {n}) for layer {layer!r}.")
    image = int(arrays["image"][i])
    png = payload.patch_png(w._study.store, image, arrays["box"][i], int(msg.get("size", 96)))
    meta = {"layer": layer, "id": i, "image": image, "box": arrays["box"][i].tolist()}
    return meta, {"png": np.frombuffer(png, np.uint8)}


HANDLERS: dict[str, Handler] = {
    "slice": handle_slice,
    "layout": handle_layout,
    "atlas": handle_atlas,
    "point": handle_point,
    "patch": handle_patch,
}


def build_replies(
    req_id: str,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Split one reply into messages of at most ~``max_bytes`` of buffers each."""
    wire = {name: to_wire_array(a, name) for name, a in arrays.items()}
    described = {
        n: {"dtype": a.dtype.name, "shape": list(a.shape), "nbytes": int(a.nbytes)}
        for n, a in wire.items()
    }
    pieces: list[tuple[str, int, bytes]] = []
    for name, a in wire.items():
        raw = a.tobytes()
        if not raw:
            pieces.append((name, 0, b""))
        for off in range(0, len(raw), max_bytes):
            pieces.append((name, off, raw[off : off + max_bytes]))
    messages: list[list[tuple[str, int, bytes]]] = [[]]
    size = 0
    for piece in pieces:
        if messages[-1] and size + len(piece[2]) > max_bytes:
            messages.append([])
            size = 0
        messages[-1].append(piece)
        size += len(piece[2])
    out = []
    for part, group in enumerate(messages):
        content: dict[str, Any] = {
            "kind": "pv:rep",
            "id": req_id,
            "part": part,
            "parts": len(messages),
            "chunks": [{"name": n, "offset": o} for n, o, _ in group],
        }
        if part == 0:
            content["meta"] = meta
            content["arrays"] = described
        out.append((content, [b for _, _, b in group]))
    return out


def dispatch(w: Any, content: dict[str, Any]) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Answer one request: the reply messages, or one ``{"error": ...}`` message. Never raises."""
    req_id = str(content.get("id", ""))
    name = content.get("name")
    try:
        handler = HANDLERS.get(str(name))
        if handler is None:
            raise InputError(f"Unknown request {name!r}. Known: {', '.join(sorted(HANDLERS))}.")
        meta, arrays = handler(w, dict(content.get("msg") or {}))
        return build_replies(req_id, meta, arrays)
    except Exception as e:  # noqa: BLE001 - every failure must reach the page as {"error"}
        error = f"{type(e).__name__}: {e}"
        return [({"kind": "pv:rep", "id": req_id, "part": 0, "parts": 1, "error": error}, [])]


def first_view(
    w: Any, key: Key, threshold: float, rev: int = 0, *, ellipsoids: bool = False
) -> bytes:
    """The points of ``key`` as ONE binary blob, sent with the widget's initial state so the page
    draws its first view without a request: uint32 little-endian header length, a JSON header
    ``{"key", "threshold", "rev", "content": <one reply message>, "buffers": [[offset, nbytes]]}``,
    then the reply's buffers, each at an 8-byte-aligned offset (``js/src/data.ts`` reads it).

    What drawing needs, 7 bytes a point (8 with more than 64 classes, :func:`lean_points`); the
    columns only tooltips and the side panel read (image, discrimination, predicted) follow with
    the page's first request, and so do the ellipsoids unless they are shown (``ellipsoids``: the
    widget's trait)."""
    shown = bool(ellipsoids)
    meta, arrays = payload.point_slice(
        w._study, w._kp, key, threshold, draw_only=True, with_ellipsoids=shown
    )
    if arrays["label"].dtype == np.uint8:  # a class byte holds every class
        meta, arrays = lean_points(meta, arrays)
    else:  # more than 256 classes: the full columns, as a slice request would send them
        meta, arrays = payload.point_slice(w._study, w._kp, key, threshold, with_ellipsoids=shown)
    [(content, bufs)] = build_replies("first", meta, arrays, max_bytes=1 << 62)
    header = {
        "key": str(key),
        "threshold": round(float(threshold), 6),
        "rev": int(rev),
        "content": content,
        "buffers": [],
    }
    room = len(json.dumps(header).encode()) + 48 * len(bufs) + 16  # header padded to this size
    pos = 4 + room + (-(4 + room) % 8)
    for b in bufs:
        header["buffers"].append([pos, len(b)])
        pos += len(b) + (-len(b) % 8)
    head = json.dumps(header).encode()
    out = bytearray(struct.pack("<I", len(head)) + head)
    for (off, _), b in zip(header["buffers"], bufs):
        out += b"\0" * (off - len(out))
        out += b
    return bytes(out)


def lean_points(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The drawing columns in 7 bytes a point: int16 N×3 ``p`` = x, y, z scaled to ±32767 of the
    largest |coordinate| (``meta["scale"]``), and uint8 N ``m`` = class | glyph << 6, glyph 3 = not
    finite, not drawn. With a class above 63 the class needs the whole byte: one int16 N×4 ``q``
    instead, x, y, z, then class (low byte) | glyph << 8 (8 bytes a point), the layout
    ``js/src/gl/pack.ts`` uploads; the page expands ``p``, ``m`` to it (``unpackLean``)."""
    xyz = np.asarray(arrays["xyz"], np.float32)
    label = np.asarray(arrays["label"])
    finite = np.isfinite(xyz).all(axis=1)
    every = bool(finite.all())
    pts = xyz if every else xyz[finite]  # no copy when every point is finite (the usual case)
    scale = float(np.abs(pts).max()) if pts.size else 0.0
    scale = scale if scale > 0 else 1.0
    small = not label.size or int(label.max()) < 64  # class and glyph share one byte
    q = np.empty((xyz.shape[0], 3 if small else 4), np.int16)
    scaled = np.multiply(pts, np.float32(32767.0 / scale))
    np.rint(scaled, out=scaled)
    if every:
        q[:, :3] = scaled  # |value| ≤ 32767 by the scale: the cast is exact
    else:
        q[:, :3] = 0
        q[finite, :3] = scaled
    meta = {**meta, "scale": scale, "lean": True}
    if small:
        m = np.left_shift(np.asarray(arrays["glyph"], np.uint8), 6)
        if not every:
            m[~finite] = 3 << 6
        m |= label.astype(np.uint8)
        return meta, {"p": q, "m": m}
    glyph = np.asarray(arrays["glyph"]).astype(np.int16)
    if not every:
        glyph[~finite] = 3
    q[:, 3] = label.astype(np.int16) | (glyph << 8)
    return meta, {"q": q}
