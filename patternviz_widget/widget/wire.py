"""The one array serializer between the kernel and the page.

Every array that crosses the wire (trait or RPC reply) goes through :func:`encode`, which applies
one dtype policy and returns ``{"dtype", "shape", "buffer"}`` with a C-contiguous buffer that the JS
(``js/src/wire.ts``) views as a typed array without copying:

=============================  ==========================================================
numpy dtype                    sent as
=============================  ==========================================================
float64, float16               float32
int64                          int32 (ValueError when a value does not fit)
uint64                         uint32 (ValueError when a value does not fit)
bool                           uint8 (0/1)
float32, int32, uint32,        unchanged
int16, uint16, int8, uint8
anything else                  ValueError naming the trait and the dtype
=============================  ==========================================================

Indices (selection, ids) are sent as uint32 through :func:`encode_indices`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

#: dtypes the page can view directly (JS typed-array constructors of the same name exist).
WIRE_DTYPES = ("float32", "int32", "uint32", "int16", "uint16", "int8", "uint8")

_CAST = {
    "float64": "float32",
    "float16": "float32",
    "int64": "int32",
    "uint64": "uint32",
    "bool": "uint8",
}


def wire_dtype(dtype: np.dtype | str, name: str = "array") -> str:
    """Return the dtype name an array of ``dtype`` is sent as, or raise naming ``name``."""
    dt = np.dtype(dtype).name
    if dt in WIRE_DTYPES:
        return dt
    if dt in _CAST:
        return _CAST[dt]
    raise InputError(
        f"Cannot send {name!r} of dtype {dt} to the page. Supported: {', '.join(WIRE_DTYPES)} "
        "(float64/float16, int64/uint64 and bool are converted). Convert it with .astype(...) first."
    )


def to_wire_array(value: Any, name: str = "array") -> np.ndarray:
    """Return ``value`` as a C-contiguous numpy array in its wire dtype (the policy above)."""
    arr = np.asarray(value)
    target = wire_dtype(arr.dtype, name)
    if arr.dtype.name in ("int64", "uint64") and arr.size:
        info = np.iinfo(target)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise InputError(
                f"{name!r} holds values in [{lo}, {hi}], outside {target}'s range; it cannot be sent "
                "to the page. Use smaller ids or split the data."
            )
    return np.ascontiguousarray(arr, dtype=target)


def encode(value: Any, name: str = "array") -> dict[str, Any] | None:
    """Return ``{"dtype", "shape", "buffer"}`` for an array (``None`` stays ``None``)."""
    if value is None:
        return None
    arr = to_wire_array(value, name)
    return {"dtype": arr.dtype.name, "shape": list(arr.shape), "buffer": memoryview(arr.tobytes())}


def decode(payload: dict[str, Any] | None, name: str = "array") -> np.ndarray | None:
    """Inverse of :func:`encode`: a numpy array (a copy, writable) or ``None``."""
    if payload is None:
        return None
    if not isinstance(payload, dict) or not {"dtype", "shape", "buffer"} <= payload.keys():
        raise InputError(
            f"{name!r}: expected {{dtype, shape, buffer}}, got {type(payload).__name__}."
        )
    dtype = wire_dtype(payload["dtype"], name)
    if dtype != payload["dtype"]:
        raise InputError(
            f"{name!r}: the page sent dtype {payload['dtype']!r}; expected one of {WIRE_DTYPES}."
        )
    shape = tuple(int(s) for s in payload["shape"])
    buf = bytes(payload["buffer"])
    count = int(np.prod(shape)) if shape else 1
    if len(buf) != count * np.dtype(dtype).itemsize:
        raise InputError(
            f"{name!r}: {len(buf)} bytes do not hold a {dtype} array of shape {shape}."
        )
    return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()


# -- index buffers (the `selection` trait) ------------------------------------------------------


def encode_indices(values: Any, name: str = "selection") -> bytes:
    """Return sorted unique non-negative integer ids as little-endian uint32 bytes."""
    arr = np.asarray(values if values is not None else [], dtype=np.float64).ravel()
    if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise InputError(f"{name} must hold integer ids, got {arr[:5].tolist()}…")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint32).max):
        raise InputError(
            f"{name} ids must be in [0, 2**32), got min {arr.min():.0f}, max {arr.max():.0f}."
        )
    return np.unique(arr.astype(np.uint32)).astype("<u4").tobytes()


def decode_indices(data: bytes | memoryview | None) -> np.ndarray:
    """Inverse of :func:`encode_indices`: uint32 ids (a copy)."""
    if data is None:
        return np.zeros(0, dtype=np.uint32)
    buf = bytes(data)
    if len(buf) % 4:
        raise InputError(f"An index buffer must be a multiple of 4 bytes long, got {len(buf)}.")
    return np.frombuffer(buf, dtype="<u4").astype(np.uint32)


def bytes_from_json(value: Any, widget: Any = None) -> bytes:
    """``from_json`` of Bytes traits: the page sends a memoryview (or a DataView-like), we keep bytes.

    Without it traitlets rejects the memoryview with a TraitError that is logged nowhere, and the
    other traits of the same message are dropped with it.
    """
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, list):  # a JSON list of numbers from an old frontend
        return bytes(bytearray(int(v) & 0xFF for v in value))
    raise InputError(f"Expected a binary buffer from the page, got {type(value).__name__}.")


def bytes_to_json(value: bytes, widget: Any = None) -> memoryview:
    """``to_json`` of Bytes traits: send as a binary buffer, never a JSON list."""
    return memoryview(value or b"")


#: serializers for ``traitlets.Bytes(...).tag(sync=True, **BYTES_SERIALIZERS)``.
BYTES_SERIALIZERS = {"to_json": bytes_to_json, "from_json": bytes_from_json}


def split_rows(arrays: dict[str, np.ndarray], max_bytes: int) -> list[tuple[int, int]]:
    """Return ``[(start, stop), ...]`` row ranges so each chunk of the (equal-length) arrays is
    at most about ``max_bytes`` (at least one row per chunk)."""
    if not arrays:
        return [(0, 0)]
    n = next(iter(arrays.values())).shape[0]
    row_bytes = sum(a.nbytes // max(a.shape[0], 1) for a in arrays.values()) or 1
    rows = max(1, int(max_bytes // row_bytes))
    return [(s, min(n, s + rows)) for s in range(0, max(n, 1), rows)]
