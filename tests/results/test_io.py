"""The study file: bit-identical round trip, atomic writes, and a clear StudyFileError for every
kind of bad file, without ever unpickling."""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np
import pytest
from helpers.models import TinyConvNet

import patternviz_widget as pv
from patternviz_widget.errors import InputError, StudyFileError
from patternviz_widget.results import ArrayRecord, Key, RegionEmbedding, SampleEmbedding
from patternviz_widget.results import io as pio


@pytest.fixture(scope="module")
def study():
    ds = pv.datasets.shapes(n=12, size=16, num_classes=5, seed=0)
    s = pv.Study(
        TinyConvNet(in_channels=3, num_classes=5),
        ds,
        ["relu1", "pool2"],
        storage_dtype="float16",
        regions_per_image=6,
    )
    s.capture(progress=False)
    s.capture(epoch=2, condition="adversarial", progress=False)
    rng = np.random.default_rng(0)
    s.store.put(
        Key(),
        SampleEmbedding(
            g=rng.random((12, 3), dtype=np.float32),
            mu=np.eye(5, 3, dtype=np.float32),
            pi=np.full(5, 0.2, np.float32),
            M=rng.random((3, 8), dtype=np.float32),
            kl=float("nan"),
            params={"T": 4.0, "steps": 10},
        ),
    )
    s.store.put(
        Key(layer="pool2"),
        RegionEmbedding(
            h=rng.random((72, 3), dtype=np.float32),
            Lambda=np.ones((3, 8), np.float32),
            w=np.full(72, 1 / 6, np.float32),
            mean_strength=1.25,
        ),
    )
    s.store.put(
        Key(layer="pool2"),
        ArrayRecord(
            arrays={
                "trace": np.arange(6, dtype=np.int16).reshape(2, 3),
                "ok": np.array([True, False]),
            },
            name="attack",
            meta={"eps": 0.1},
        ),
    )
    return s


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_round_trip_is_bit_identical(study, tmp_path):
    path = study.save(tmp_path / "study.pvz")
    assert path == tmp_path / "study.pvz" and zipfile.is_zipfile(path)
    loaded = pv.Study.load(path)
    before = dict(study.store.items_with_kind())
    after = dict(loaded.store.items_with_kind())
    assert before.keys() == after.keys() and len(after) == 9
    for k, rec in before.items():
        a_arr, a_meta = rec.split()
        b_arr, b_meta = after[k].split()
        assert type(after[k]) is type(rec) and _same(a_meta, b_meta)
        assert a_arr.keys() == b_arr.keys()
        for f in a_arr:
            assert a_arr[f].dtype == b_arr[f].dtype and a_arr[f].shape == b_arr[f].shape
            assert a_arr[f].tobytes() == b_arr[f].tobytes(), (k, f)
    p, q = study.store.probe, loaded.store.probe
    for f in ("labels", "thumbnails", "data_index", "masks"):
        assert (
            getattr(p, f).tobytes() == getattr(q, f).tobytes()
            and getattr(p, f).dtype == getattr(q, f).dtype
        )
    assert q.input_size == p.input_size == (16, 16) and q.class_names == p.class_names
    assert json.dumps(loaded.store.meta, sort_keys=True) == json.dumps(
        study.store.meta, sort_keys=True
    )
    assert loaded.model is None and loaded.layers == ["relu1", "pool2"] and loaded.num_classes == 5
    assert loaded.store.catalog() == study.store.catalog()


def test_save_is_atomic(study, tmp_path, monkeypatch):
    path = study.save(tmp_path / "s.pvz")
    good = path.read_bytes()
    real = np.lib.format.write_array
    calls = []

    def fail_on_third(f, arr, allow_pickle=False):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(f, arr, allow_pickle=allow_pickle)

    monkeypatch.setattr(np.lib.format, "write_array", fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        study.save(path)
    assert path.read_bytes() == good  # the old file is untouched
    assert sorted(os.listdir(tmp_path)) == ["s.pvz"]  # no temp file left behind


def test_saving_an_object_array_is_refused(tmp_path):
    store = pv.ResultStore()
    store.put(Key(), ArrayRecord(arrays={"x": np.array([{"a": 1}], dtype=object)}, name="bad"))
    with pytest.raises(InputError, match="dtype object"):
        pio.save_store(store, tmp_path / "x.pvz")
    assert not (tmp_path / "x.pvz").exists()


def _rewrite(src, dst, manifest=None, extra=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if info.filename == "manifest.json" and manifest is not None:
                m = json.loads(data)
                manifest(m)
                data = json.dumps(m).encode()
            zout.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


@pytest.fixture
def saved(study, tmp_path):
    return study.save(tmp_path / "good.pvz")


def test_not_a_zip(tmp_path):
    p = tmp_path / "notes.pvz"
    p.write_text("hello")
    with pytest.raises(
        StudyFileError, match="is not a patternviz study file, or it is truncated"
    ) as e:
        pv.Study.load(p)
    assert isinstance(e.value, OSError)
    with pytest.raises(StudyFileError, match="No study file at"):
        pv.load(tmp_path / "missing.pvz")


def test_truncated(saved, tmp_path):
    p = tmp_path / "cut.pvz"
    p.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(StudyFileError, match="truncated"):
        pv.Study.load(p)


def test_corrupt_member(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("r1/features.npy")
    mid = info.header_offset + 30 + len(info.filename) + 200  # inside the stored array bytes
    data[mid : mid + 8] = bytes(255 - b for b in data[mid : mid + 8])
    p = tmp_path / "flipped.pvz"
    p.write_bytes(bytes(data))
    with pytest.raises(StudyFileError, match=r"member 'r1/features.npy' is corrupt"):
        pv.Study.load(p)


def test_missing_manifest_member_or_wrong_format(saved, tmp_path):
    with pytest.raises(
        StudyFileError, match="has no manifest.json: it is a zip file, but not a patternviz study"
    ):
        pv.Study.load(_rewrite(saved, tmp_path / "a.pvz", drop=("manifest.json",)))
    with pytest.raises(StudyFileError, match="lacks the array member 'r0/features.npy'"):
        pv.Study.load(_rewrite(saved, tmp_path / "b.pvz", drop=("r0/features.npy",)))
    with pytest.raises(StudyFileError, match=r"is not a patternviz study \(format 'other'"):
        pv.Study.load(
            _rewrite(saved, tmp_path / "c.pvz", manifest=lambda m: m.update(format="other"))
        )


def test_newer_schema_and_unknown_record_kind(saved, tmp_path):
    with pytest.raises(
        StudyFileError, match=r"written by a newer patternviz-widget .*schema 99 > 1\)\. Upgrade"
    ):
        pv.Study.load(_rewrite(saved, tmp_path / "n.pvz", manifest=lambda m: m.update(schema=99)))

    def rename(m):
        m["records"][0]["kind"] = "HologramRecord"

    with pytest.raises(StudyFileError, match="unknown kind 'HologramRecord'"):
        pv.Study.load(_rewrite(saved, tmp_path / "k.pvz", manifest=rename))


class _Payload:
    """Unpickling this would create a marker directory."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_object_arrays_are_never_unpickled(saved, tmp_path):
    import io

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.save(buf, np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    evil = _rewrite(
        saved,
        tmp_path / "evil.pvz",
        drop=("r0/features.npy",),
        extra={"r0/features.npy": buf.getvalue()},
    )
    with pytest.raises(StudyFileError, match="is not a plain numeric array"):
        pv.Study.load(evil)
    assert not marker.exists()
