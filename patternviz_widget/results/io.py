"""The study file: one zip container of ``.npy`` arrays plus a JSON manifest. Never pickles.

Layout (ZIP_STORED, zip64)::

    manifest.json     {"format": "patternviz-study", "schema": 1, "writer": "...",
                       "meta": store.meta, "probe": ENTRY | null, "records": [ENTRY, ...]}
    r<i>/<field>.npy  one member per array field of record i (np.lib.format, allow_pickle=False)

    ENTRY = {"key": {"model", "condition", "epoch", "layer"} (absent for the probe),
             "kind": "<record class name>", "meta": {<JSON fields>}, "arrays": {field: member}}

Saving writes a temporary file in the target's folder, fsyncs it and ``os.replace``-s it over the
target, so a crash leaves either the old file or the new one, never half of one. Loading checks
everything it reads and raises :class:`~patternviz_widget.errors.StudyFileError` for a file that
is not a zip, truncated or corrupt, without a manifest, of another format, of a newer schema, with
an unknown record kind or with object arrays. Arrays are read with ``allow_pickle=False``; no code
in the file is ever executed.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, StudyFileError
from .keys import Key
from .records import RECORD_TYPES, ProbeRecord, Record
from .store import ResultStore

FORMAT = "patternviz-study"
SCHEMA_VERSION = 1
#: numpy dtype kinds a study file may hold: bool, signed/unsigned integers, floats.
_KINDS = "biuf"


def save_store(store: ResultStore, path: str | os.PathLike) -> Path:
    """Return the path written after saving ``store`` (every record, ``probe`` and ``meta``) to
    ``path`` atomically. Raises InputError when a record holds something a study file cannot."""
    path = Path(path)
    members: list[tuple[str, np.ndarray]] = []

    def entry(i: str, rec: Record, key: Key | None) -> dict[str, Any]:
        arrays, meta = rec.split()
        names = {}
        for field, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype.kind not in _KINDS:
                where = f"{type(rec).__name__}.{field}" + (f" of {key}" if key else "")
                raise InputError(f"{where} has dtype {arr.dtype}; a study file holds only bool, integer and float arrays.")
            names[field] = f"{i}/{field}.npy"
            members.append((names[field], arr))
        out: dict[str, Any] = {"kind": type(rec).__name__, "meta": meta, "arrays": names}
        if key is not None:
            out["key"] = {"model": key.model, "condition": key.condition, "epoch": key.epoch, "layer": key.layer}
        return out

    records = [entry(f"r{i}", rec, key) for i, ((key, _), rec) in enumerate(store.items_with_kind())]
    manifest = {
        "format": FORMAT,
        "schema": SCHEMA_VERSION,
        "writer": f"patternviz-widget {_version()}",
        "meta": store.meta,
        "probe": entry("probe", store.probe, None) if store.probe is not None else None,
        "records": records,
    }
    try:
        text = json.dumps(manifest, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise InputError(f"Study metadata is not JSON-able ({e}); keep store.meta and record fields to plain values.") from e

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr("manifest.json", text.encode("utf-8"))
                for name, arr in members:
                    with zf.open(name, "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def load_store(path: str | os.PathLike) -> ResultStore:
    """Return the :class:`ResultStore` saved in ``path``; raise StudyFileError for anything odd."""
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(f"No study file at {str(path)!r}.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as e:
        raise StudyFileError(
            f"{str(path)!r} is not a patternviz study file, or it is truncated ({e}). Study files are "
            "written by study.save(path)."
        ) from e
    with zf:
        manifest = _manifest(zf, path)
        store = ResultStore()
        meta = manifest.get("meta", {})
        if not isinstance(meta, dict):
            raise StudyFileError(f"{str(path)!r}: the manifest's 'meta' is not an object; the file is corrupt.")
        store.meta = meta
        if manifest.get("probe") is not None:
            probe = _record(zf, manifest["probe"], path)
            if not isinstance(probe, ProbeRecord):
                raise StudyFileError(f"{str(path)!r}: the probe entry holds a {type(probe).__name__}; the file is corrupt.")
            store.probe = probe
        entries = manifest.get("records", [])
        if not isinstance(entries, list):
            raise StudyFileError(f"{str(path)!r}: the manifest's 'records' is not a list; the file is corrupt.")
        for e in entries:
            rec = _record(zf, e, path)
            store.put(_key(e, path), rec)
    return store


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    if "manifest.json" not in zf.namelist():
        raise StudyFileError(f"{str(path)!r} has no manifest.json: it is a zip file, but not a patternviz study.")
    try:
        manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise StudyFileError(f"{str(path)!r}: its manifest is corrupt ({e}).") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise StudyFileError(f"{str(path)!r} is not a patternviz study (format {fmt!r}, expected {FORMAT!r}).")
    schema = manifest.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise StudyFileError(f"{str(path)!r}: invalid schema version {schema!r}; the file is corrupt.")
    if schema > SCHEMA_VERSION:
        raise StudyFileError(
            f"{str(path)!r} was written by a newer patternviz-widget ({manifest.get('writer', '?')}, schema "
            f"{schema} > {SCHEMA_VERSION}). Upgrade: pip install -U patternviz-widget."
        )
    return manifest


def _record(zf: zipfile.ZipFile, e: Any, path: Path) -> Record:
    if not isinstance(e, dict) or not isinstance(e.get("arrays"), dict) or not isinstance(e.get("meta"), dict):
        raise StudyFileError(f"{str(path)!r}: a record entry is malformed; the file is corrupt.")
    kind = e.get("kind")
    cls = RECORD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise StudyFileError(
            f"{str(path)!r} holds a record of unknown kind {kind!r} (known: {sorted(RECORD_TYPES)}); it was "
            "probably written by a newer patternviz-widget. Upgrade: pip install -U patternviz-widget."
        )
    arrays = {field: _array(zf, member, path) for field, member in e["arrays"].items()}
    try:
        return cls.join(arrays, e["meta"])  # type: ignore[attr-defined]
    except (TypeError, ValueError, KeyError, IndexError) as err:
        raise StudyFileError(f"{str(path)!r}: a {kind} record does not fit its type ({err}); the file is corrupt.") from err


def _array(zf: zipfile.ZipFile, member: Any, path: Path) -> np.ndarray:
    if not isinstance(member, str) or member not in zf.NameToInfo:
        raise StudyFileError(f"{str(path)!r} lacks the array member {member!r}; the file is truncated or corrupt.")
    try:
        with zf.open(member) as f:
            arr = np.lib.format.read_array(f, allow_pickle=False)
            if f.read(1):
                raise ValueError("trailing bytes after the array")
    except ValueError as e:
        raise StudyFileError(f"{str(path)!r}: member {member!r} is not a plain numeric array ({e}).") from e
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise StudyFileError(f"{str(path)!r}: member {member!r} is corrupt ({e}).") from e
    if arr.dtype.kind not in _KINDS or arr.dtype.hasobject:
        raise StudyFileError(f"{str(path)!r}: member {member!r} has dtype {arr.dtype}, which a study file never holds.")
    return arr


def _key(e: dict[str, Any], path: Path) -> Key:
    k = e.get("key")
    ok = (
        isinstance(k, dict)
        and all(isinstance(k.get(f), str) for f in ("model", "condition", "layer"))
        and isinstance(k.get("epoch"), int)
        and not isinstance(k.get("epoch"), bool)
    )
    if not ok:
        raise StudyFileError(f"{str(path)!r}: a record has a malformed key {k!r}; the file is corrupt.")
    return Key(k["model"], k["condition"], k["epoch"], k["layer"])


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON-able")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("patternviz-widget")
    except PackageNotFoundError:  # pragma: no cover
        return "0.0.0+local"
