"""The study file: one zip container of ``.npy`` arrays plus a JSON manifest. Never pickles.

Layout (ZIP_STORED, zip64)::

    manifest.json     {"format": "patternviz-study", "schema": 1, "writer": "...",
                       "meta": store.meta, "probe": ENTRY | null, "records": [ENTRY, ...]}
    r<i>/<field>.npy  one member per array field of record i (np.lib.format, allow_pickle=False)

    ENTRY = {"key": {"model", "condition", "epoch", "layer"} (absent for the probe),
             "kind": "<record class name>", "meta": {<JSON fields>}, "arrays": {field: member}}

Saving writes a temporary file ``.<name>.<pid>-<random>.tmp`` in the target's folder, fsyncs it
and ``os.replace``-s it over the target, so a crash leaves either the old file or the new one, never
half of one. A process killed during a save (SIGKILL) leaves its temporary file behind; the next
save to the same path removes the temporary files of processes that no longer run. Every save
stamps the manifest with a fresh ``generation``; a store remembers the generation it last wrote or
read for each path, and a save over a file whose generation has changed since then (another process
or another study wrote it) raises StudyFileError instead of silently discarding that writer's work
(``overwrite=True`` replaces it anyway).

Loading checks everything it reads and raises :class:`~patternviz_widget.errors.StudyFileError`
for a file that is not a zip, truncated or corrupt, without a manifest, of another format, of a
newer schema, with an unknown record kind or with object arrays, and for records that disagree with
each other or with the probe set (row counts, image indices, grid cells, class counts). Arrays are
read with ``allow_pickle=False``; no code in the file is ever executed.
"""

from __future__ import annotations

import errno
import json
import os
import time
import tokenize
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


#: A temporary file without a process id (older writers) counts as stale after this many seconds.
STALE_TMP_SECONDS = 600.0


def save_store(store: ResultStore, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return the path written after saving ``store`` (every record, ``probe`` and ``meta``) to
    ``path`` atomically.

    Raises InputError when a record holds something a study file cannot; StudyFileError when the
    folder cannot be written (the message names the OS's reason) or when ``path`` was rewritten by
    another writer since this store last saved or loaded it (``overwrite=True`` replaces it anyway).
    """
    path = Path(path)
    members: list[tuple[str, np.ndarray]] = []

    def entry(i: str, rec: Record, key: Key | None) -> dict[str, Any]:
        arrays, meta = rec.split()
        names = {}
        for field, arr in arrays.items():
            arr = np.asarray(arr)
            if arr.dtype.kind not in _KINDS:
                where = f"{type(rec).__name__}.{field}" + (f" of {key}" if key else "")
                raise InputError(
                    f"{where} has dtype {arr.dtype}; a study file holds only bool, integer and float arrays."
                )
            names[field] = f"{i}/{field}.npy"
            members.append((names[field], arr))
        out: dict[str, Any] = {"kind": type(rec).__name__, "meta": meta, "arrays": names}
        if key is not None:
            out["key"] = {
                "model": key.model,
                "condition": key.condition,
                "epoch": key.epoch,
                "layer": key.layer,
            }
        return out

    records = [
        entry(f"r{i}", rec, key) for i, ((key, _), rec) in enumerate(store.items_with_kind())
    ]
    generation = uuid.uuid4().hex
    manifest = {
        "format": FORMAT,
        "schema": SCHEMA_VERSION,
        "writer": f"patternviz-widget {_version()}",
        "generation": generation,
        "meta": store.meta,
        "probe": entry("probe", store.probe, None) if store.probe is not None else None,
        "records": records,
    }
    try:
        text = json.dumps(manifest, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise InputError(
            f"Study metadata is not JSON-able ({e}); keep store.meta and record fields to plain values."
        ) from e

    check_writable(path)
    _remove_stale_tmp(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr("manifest.json", text.encode("utf-8"))
                for name, arr in members:
                    with zf.open(name, "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        if not overwrite:
            _check_generation(store, path)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only file system: keep the original error visible
            pass
        if isinstance(e, OSError) and not isinstance(e, StudyFileError):
            raise _write_error(path, e) from e
        raise
    store.file_generations[_path_id(path)] = generation
    _fsync_dir(path.parent)
    return path


def load_store(path: str | os.PathLike) -> ResultStore:
    """Return the :class:`ResultStore` saved in ``path``; raise StudyFileError for anything odd."""
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(f"No study file at {str(path)!r}.")
    try:
        zf = zipfile.ZipFile(path)
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,
    ) as e:
        raise StudyFileError(
            f"{str(path)!r} is not a patternviz study file, or it is truncated ({e}). Study files are "
            "written by study.save(path)."
        ) from e
    try:
        with zf:
            store = _load(zf, path)
    except StudyFileError:
        raise
    except (
        NotImplementedError,
        RuntimeError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        EOFError,
        OSError,
        zlib.error,
        zipfile.BadZipFile,
        SyntaxError,
        tokenize.TokenError,
    ) as e:
        # a damaged zip header (e.g. an unknown compression method) or array header
        raise StudyFileError(
            f"{str(path)!r} is corrupt ({type(e).__name__}: {e}); the file is damaged."
        ) from e
    _check_consistent(store, path)
    return store


def _load(zf: zipfile.ZipFile, path: Path) -> ResultStore:
    manifest = _manifest(zf, path)
    store = ResultStore()
    meta = manifest.get("meta", {})
    if not isinstance(meta, dict):
        raise StudyFileError(
            f"{str(path)!r}: the manifest's 'meta' is not an object; the file is corrupt."
        )
    store.meta = meta
    if manifest.get("probe") is not None:
        probe = _record(zf, manifest["probe"], path)
        if not isinstance(probe, ProbeRecord):
            raise StudyFileError(
                f"{str(path)!r}: the probe entry holds a {type(probe).__name__}; the file is corrupt."
            )
        store.probe = probe
    entries = manifest.get("records", [])
    if not isinstance(entries, list):
        raise StudyFileError(
            f"{str(path)!r}: the manifest's 'records' is not a list; the file is corrupt."
        )
    for e in entries:
        rec = _record(zf, e, path)
        store.put(_key(e, path), rec)
    generation = manifest.get("generation")
    if isinstance(generation, str):
        store.file_generations[_path_id(path)] = generation
    return store


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    if "manifest.json" not in zf.namelist():
        raise StudyFileError(
            f"{str(path)!r} has no manifest.json: it is a zip file, but not a patternviz study."
        )
    try:
        manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise StudyFileError(f"{str(path)!r}: its manifest is corrupt ({e}).") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise StudyFileError(
            f"{str(path)!r} is not a patternviz study (format {fmt!r}, expected {FORMAT!r})."
        )
    schema = manifest.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise StudyFileError(
            f"{str(path)!r}: invalid schema version {schema!r}; the file is corrupt."
        )
    if schema > SCHEMA_VERSION:
        raise StudyFileError(
            f"{str(path)!r} was written by a newer patternviz-widget ({manifest.get('writer', '?')}, schema "
            f"{schema} > {SCHEMA_VERSION}). Upgrade: pip install -U patternviz-widget."
        )
    return manifest


def _record(zf: zipfile.ZipFile, e: Any, path: Path) -> Record:
    if (
        not isinstance(e, dict)
        or not isinstance(e.get("arrays"), dict)
        or not isinstance(e.get("meta"), dict)
    ):
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
        raise StudyFileError(
            f"{str(path)!r}: a {kind} record does not fit its type ({err}); the file is corrupt."
        ) from err


def _array(zf: zipfile.ZipFile, member: Any, path: Path) -> np.ndarray:
    if not isinstance(member, str) or member not in zf.NameToInfo:
        raise StudyFileError(
            f"{str(path)!r} lacks the array member {member!r}; the file is truncated or corrupt."
        )
    try:
        with zf.open(member) as f:
            arr = np.lib.format.read_array(f, allow_pickle=False)
            if f.read(1):
                raise ValueError("trailing bytes after the array")
    except (ValueError, SyntaxError, tokenize.TokenError) as e:
        raise StudyFileError(
            f"{str(path)!r}: member {member!r} is not a plain numeric array ({e})."
        ) from e
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
        raise StudyFileError(f"{str(path)!r}: member {member!r} is corrupt ({e}).") from e
    if arr.dtype.kind not in _KINDS or arr.dtype.hasobject:
        raise StudyFileError(
            f"{str(path)!r}: member {member!r} has dtype {arr.dtype}, which a study file never holds."
        )
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
        raise StudyFileError(
            f"{str(path)!r}: a record has a malformed key {k!r}; the file is corrupt."
        )
    assert isinstance(k, dict)
    return Key(k["model"], k["condition"], k["epoch"], k["layer"])


def check_writable(path: str | os.PathLike) -> Path:
    """Return ``path`` after making its folder and checking that a study file can be written there
    (a test file is created and removed); raise StudyFileError naming the OS's reason otherwise."""
    path = Path(path)
    if path.is_dir():
        raise StudyFileError(
            f"{str(path)!r} is a folder; give a file path such as {str(path / 'study.pvz')!r}."
        )
    probe = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        probe.unlink()
    except OSError:  # pragma: no cover - created but not removable: the next save cleans it up
        pass
    return path


def _write_error(path: Path, e: OSError) -> StudyFileError:
    reason = e.strerror or str(e)
    hint = {
        errno.EACCES: "you may not write there",
        errno.EPERM: "you may not write there",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
    }.get(e.errno or 0, "")
    return StudyFileError(
        f"Cannot write the study file {str(path)!r}: {reason}{f' ({hint})' if hint else ''}. "
        "Save to a folder you can write to (e.g. study.save(Path.home() / 'study.pvz')) or free space. "
        f"[{type(e).__name__}: {e}]"
    )


def _path_id(path: Path) -> str:
    return os.path.realpath(path)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it runs, as another user
        return True
    return True


def _remove_stale_tmp(path: Path) -> list[Path]:
    """Remove the temporary files that earlier saves to ``path`` left behind (their process was
    killed mid-save); return the paths removed. Temporary files of running processes are kept."""
    head = f".{path.name}."
    removed: list[Path] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(head) and name.endswith(".tmp")):
            continue
        tag = name[len(head) : -len(".tmp")]
        pid_text, _, rest = tag.partition("-")
        f = path.parent / name
        if rest and pid_text.isdigit():
            stale = int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))
        else:  # an older writer's name without a process id: stale when old enough
            try:
                stale = time.time() - f.stat().st_mtime > STALE_TMP_SECONDS
            except OSError:
                stale = False
        if stale:
            try:
                f.unlink()
                removed.append(f)
            except OSError:
                pass
    return removed


def read_generation(path: str | os.PathLike) -> str | None:
    """Return the ``generation`` stamp of the study file at ``path`` (None: no file, an older
    file without one, or not a readable study file)."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
    except Exception:  # noqa: BLE001 - any unreadable file simply has no generation
        return None
    g = manifest.get("generation") if isinstance(manifest, dict) else None
    return g if isinstance(g, str) else None


def _check_generation(store: ResultStore, path: Path) -> None:
    """Raise StudyFileError when ``path`` was rewritten by another writer since ``store`` last
    saved or loaded it (a store that never saw the path may replace whatever is there)."""
    known = store.file_generations.get(_path_id(path))
    if known is None or not path.exists():
        return
    found = read_generation(path)
    if found is not None and found != known:
        raise StudyFileError(
            f"{str(path)!r} was rewritten by another writer (another process, or another study "
            "saving to the same path) since this study last saved or loaded it; saving now would "
            "discard that writer's results. Save to another path, load the file to continue from "
            "it (pv.Study.load), or pass overwrite=True to replace it."
        )


def _check_consistent(store: ResultStore, path: Path) -> None:
    """Raise StudyFileError when the records disagree with each other or with the probe set."""
    why = consistency_problem(store)
    if why:
        raise StudyFileError(
            f"{str(path)!r}: its records do not fit together ({why}); the file was damaged or edited "
            "by hand. Re-save it from the study that made it (study.save(path))."
        )


def consistency_problem(store: ResultStore) -> str | None:
    """Return the first disagreement between the records of ``store`` and its probe set, or None.

    Checked: the probe's labels, thumbnails, data_index and masks hold one row per image; labels lie
    in 0..K-1 for K class names; every SampleRecord has one row of features and logits per image
    (fewer for a capture cut short) and K logits; every RegionRecord's features, image, grid and box
    have one row per region, image indices lie in 0..N-1 and grid cells inside its grid; sample
    embeddings have one row per image and region embeddings one per region of their RegionRecord.
    """
    from .records import RegionEmbedding, RegionRecord, SampleEmbedding, SampleRecord

    probe = store.probe
    n = k = None
    if probe is not None:
        labels = np.asarray(probe.labels)
        if labels.ndim != 1:
            return f"the probe's labels have shape {labels.shape}, not (N,)"
        n = labels.shape[0]
        for name in ("thumbnails", "data_index", "masks"):
            arr = getattr(probe, name)
            if arr is not None and (np.ndim(arr) == 0 or np.shape(arr)[0] != n):
                return f"the probe has {n} labels but {name} for {np.shape(arr)[0] if np.ndim(arr) else 0} images"
        if not isinstance(probe.class_names, list) or not all(
            isinstance(c, str) for c in probe.class_names
        ):
            return "the probe's class_names are not a list of strings"
        k = len(probe.class_names) or None
        if n and k and (labels.min() < 0 or labels.max() >= k):
            return f"a probe label lies outside 0..{k - 1} for {k} class names"
    rows: dict[Key, int] = {}
    for (key, _kind), rec in store.items_with_kind():
        if isinstance(rec, SampleRecord):
            f, z = np.asarray(rec.features), np.asarray(rec.logits)
            if f.ndim != 2 or z.ndim != 2 or f.shape[0] != z.shape[0]:
                return f"{key}: sample features {f.shape} and logits {z.shape} disagree"
            if n is not None and f.shape[0] > n:
                return f"{key}: {f.shape[0]} sample rows for {n} probe images"
            if k is not None and z.shape[1] != k:
                return f"{key}: {z.shape[1]} logits per image for {k} class names"
        elif isinstance(rec, RegionRecord):
            f = np.asarray(rec.features)
            m = f.shape[0] if f.ndim == 2 else -1
            shapes = {"image": (m,), "grid": (m, 2), "box": (m, 4)}
            for name, want in shapes.items():
                if m < 0 or np.shape(getattr(rec, name)) != want:
                    return f"{key}: region features {f.shape} but {name} {np.shape(getattr(rec, name))}"
            gs = tuple(rec.grid_shape) if isinstance(rec.grid_shape, (tuple, list)) else ()
            if len(gs) != 2 or not all(isinstance(g, int) and g >= 1 for g in gs):
                return f"{key}: grid_shape {rec.grid_shape!r} is not (rows, cols)"
            if m:
                if n is not None and (rec.image.min() < 0 or rec.image.max() >= n):
                    return f"{key}: region image indices outside 0..{n - 1} for {n} probe images"
                g = np.asarray(rec.grid)
                if g.min() < 0 or g[:, 0].max() >= gs[0] or g[:, 1].max() >= gs[1]:
                    return f"{key}: region grid cells outside its {gs[0]}×{gs[1]} grid"
            rows[key] = m
    for (key, _kind), rec in store.items_with_kind():
        if isinstance(rec, SampleEmbedding):
            g = np.asarray(rec.g)
            if g.ndim != 2 or (n is not None and g.shape[0] > n):
                return f"{key}: sample embedding of shape {g.shape} for {n} probe images"
        elif isinstance(rec, RegionEmbedding):
            h = np.asarray(rec.h)
            if h.ndim != 2 or (key in rows and h.shape[0] != rows[key]):
                return f"{key}: region embedding of shape {h.shape} for {rows.get(key)} regions"
    return None


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
