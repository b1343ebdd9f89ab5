"""Study files under faults: damaged bytes, records that disagree, unwritable places, a writer killed
mid-save, and two writers on one path. Each gives a StudyFileError that names the fix, or the data
as written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.models import TinyConvNet

import patternviz_widget as pv
from patternviz_widget.errors import StudyFileError
from patternviz_widget.results import ArrayRecord, Key, RegionRecord, SampleRecord
from patternviz_widget.results import io as pio


@pytest.fixture(scope="module")
def study():
    ds = pv.datasets.shapes(n=10, size=16, num_classes=5, seed=0)
    s = pv.Study(
        TinyConvNet(in_channels=3, num_classes=5), ds, ["relu1", "pool2"], regions_per_image=2
    )
    s.capture(progress=False)
    return s


def _dump(store: pv.ResultStore) -> dict:
    """Every byte, dtype and shape of a store, for exact comparison."""
    out: dict = {"meta": json.dumps(store.meta, sort_keys=True)}
    items = [(str(k), rec) for k, rec in store.items_with_kind()] + [("probe", store.probe)]
    for name, rec in items:
        arrays, meta = rec.split()
        out[name] = (
            {f: (a.dtype.str, a.shape, a.tobytes()) for f, a in arrays.items()},
            repr(meta),
        )
    return out


def _copy_store(store: pv.ResultStore) -> pv.ResultStore:
    out = pv.ResultStore()
    out.probe, out.meta = store.probe, dict(store.meta)
    for (key, _), rec in store.items_with_kind():
        out.put(key, rec)
    return out


def test_every_single_bit_flip_is_a_study_file_error_or_the_same_data(study, tmp_path):
    path = study.save(tmp_path / "s.pvz")
    good = path.read_bytes()
    ref = _dump(pio.load_store(path))
    rng = np.random.default_rng(19)
    flips = [(int(rng.integers(len(good))), int(rng.integers(8))) for _ in range(400)]
    # and every bit of the zip fields whose damage zipfile reports as NotImplementedError: the
    # "version needed" and "compression method" of the first members' headers (local: +4, +8;
    # central directory: +6, +10)
    with zipfile.ZipFile(path) as zf:
        heads, at = [(i.header_offset, (4, 8)) for i in zf.infolist()[:4]], zf.start_dir
    for _ in range(4):
        assert good[at : at + 4] == b"PK\x01\x02"
        heads.append((at, (6, 10)))
        n, m, k = struct.unpack("<HHH", good[at + 28 : at + 34])
        at += 46 + n + m + k
    flips += [
        (h + off + b, bit) for h, offs in heads for off in offs for b in (0, 1) for bit in range(8)
    ]
    bad = tmp_path / "flipped.pvz"
    outcomes = {"error": 0, "same": 0}
    for pos, bit in flips:
        data = bytearray(good)
        data[pos] ^= 1 << bit
        bad.write_bytes(bytes(data))
        try:
            loaded = pio.load_store(bad)
        except StudyFileError:
            outcomes["error"] += 1
            continue
        assert _dump(loaded) == ref, f"flip of bit {bit} at byte {pos} loaded different data"
        outcomes["same"] += 1
    assert outcomes["error"] > 400 and outcomes["same"] > 0  # both outcomes occur


def _saved_with(study, tmp_path, name, **probe_changes):
    store = _copy_store(study.store)
    if probe_changes:
        store.probe = type(store.probe)(**{**store.probe.__dict__, **probe_changes})
    return pio.save_store(store, tmp_path / name)


def test_records_that_disagree_are_refused_at_load(study, tmp_path):
    labels = study.store.probe.labels
    # CRCs are fine, but the probe has labels for 3 images and thumbnails for 10
    path = _saved_with(study, tmp_path, "labels.pvz", labels=labels[:3])
    with pytest.raises(
        StudyFileError, match=r"do not fit together \(the probe has 3 labels but thumbnails for 10"
    ):
        pv.Study.load(path)
    # a region record pointing at image 10 of 10
    store = _copy_store(study.store)
    key = Key(layer="pool2")
    rec = store.get(key, RegionRecord)
    image = rec.image.copy()
    image[-1] = 10
    store.put(key, RegionRecord(rec.features, image, rec.grid, rec.box, rec.grid_shape, rec.kind))
    with pytest.raises(
        StudyFileError, match=r"image indices outside 0\.\.9 for 10 probe images.*Re-save it"
    ):
        pio.load_store(pio.save_store(store, tmp_path / "image.pvz"))
    # logits of 12 classes for 5 class names
    store = _copy_store(study.store)
    s = store.get(Key(), SampleRecord)
    store.put(Key(), SampleRecord(s.features, np.zeros((10, 12), np.float32), s.source))
    with pytest.raises(StudyFileError, match="12 logits per image for 5 class names"):
        pio.load_store(pio.save_store(store, tmp_path / "k.pvz"))
    # a free-form record is not second-guessed; the untouched store still round-trips
    store = _copy_store(study.store)
    store.put(Key(layer="pool2"), ArrayRecord(arrays={"x": np.arange(7)}, name="anything"))
    assert _dump(pio.load_store(pio.save_store(store, tmp_path / "ok.pvz"))) == _dump(store)


def test_saving_where_one_may_not_write_names_the_fix(study, tmp_path):
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_create("/sys"):
        pytest.skip("needs a folder this user cannot write (Linux /sys)")
    with pytest.raises(
        StudyFileError, match="you may not write there.*Save to a folder you can write to"
    ) as e:
        study.save("/sys/study.pvz")
    assert isinstance(e.value, OSError) and isinstance(e.value.__cause__, PermissionError)


def _can_create(folder: str) -> bool:
    try:
        Path(folder, ".pv-probe").touch()
    except OSError:
        return False
    Path(folder, ".pv-probe").unlink()
    return True


def test_saving_on_a_read_only_file_system_names_it(tmp_path):
    """A real read-only mount (a private mount namespace; needs root): the error says why, and
    no cleanup error hides it."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a read-only file system")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    child = tmp_path / "child.py"
    child.write_text(
        textwrap.dedent(
            """
            import sys
            import numpy as np
            from patternviz_widget.results import ArrayRecord, Key, ResultStore
            from patternviz_widget.results.io import save_store
            s = ResultStore()
            s.put(Key(), ArrayRecord(arrays={"x": np.arange(3)}))
            try:
                save_store(s, sys.argv[1])
            except Exception as e:
                print(type(e).__name__, "|", e)
            """
        )
    )
    script = (
        f"mount -t tmpfs none {mnt} && mkdir {mnt}/run && mount -o remount,ro {mnt} && "
        f"{sys.executable} {child} {mnt}/run/s.pvz"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    if "Operation not permitted" in out.stderr or "permission denied" in out.stderr.lower():
        pytest.skip(f"cannot mount here: {out.stderr.strip()}")
    assert out.stdout.startswith("StudyFileError |"), out.stdout + out.stderr
    assert (
        "the file system is read-only" in out.stdout
        and "Save to a folder you can write to" in out.stdout
    )


def test_a_tracker_with_an_unwritable_path_fails_before_any_work(study, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    t0 = time.perf_counter()
    with pytest.raises(
        StudyFileError, match="Cannot write the study file .*Save to a folder you can write to"
    ):
        study.tracker(path=blocker / "run.pvz")  # its folder is a file: nothing can be written
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(StudyFileError, match="is a folder; give a file path"):
        study.tracker(path=tmp_path)
    assert study.store.epochs() == [0]  # nothing was captured


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from patternviz_widget.results import ArrayRecord, Key, ResultStore
    from patternviz_widget.results.io import save_store
    real = np.lib.format.write_array

    def slow(*a, **k):
        print("WRITING", flush=True)
        time.sleep(30)
        return real(*a, **k)

    np.lib.format.write_array = slow
    s = ResultStore()
    s.put(Key(), ArrayRecord(arrays={"x": np.arange(1000)}))
    save_store(s, sys.argv[1])
    """
)


def test_a_save_removes_the_temp_file_of_a_writer_killed_mid_save(study, tmp_path):
    path = tmp_path / "run.pvz"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "WRITING"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    leftovers = list(tmp_path.glob(".run.pvz.*.tmp"))
    assert len(leftovers) == 1 and not path.exists()
    # a live writer's temp file is not touched (this test's own parent process stands in for it)
    live = tmp_path / f".run.pvz.{os.getppid()}-0badc0de.tmp"
    live.write_bytes(b"in progress")
    old = tmp_path / ".run.pvz.0123abcd.tmp"  # an older writer's name, without a pid, an hour old
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    study.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run.pvz", live.name])
    assert pv.Study.load(path).store.epochs() == [0]


WRITER_B = textwrap.dedent(
    """
    import sys
    import numpy as np
    from patternviz_widget.results import ArrayRecord, Key, ResultStore
    from patternviz_widget.results.io import save_store
    s = ResultStore()
    s.put(Key(), ArrayRecord(arrays={"x": np.arange(3)}, name="B"))
    save_store(s, sys.argv[1])
    """
)


def test_two_writers_on_one_path_are_detected(study, tmp_path):
    path = tmp_path / "shared.pvz"
    a = _copy_store(study.store)
    pio.save_store(a, path)
    pio.save_store(a, path)  # the same writer again: fine
    subprocess.run([sys.executable, "-c", WRITER_B, str(path)], check=True, timeout=60)  # process B
    b_bytes = path.read_bytes()
    with pytest.raises(
        StudyFileError, match="rewritten by another writer.*Save to another path.*overwrite=True"
    ):
        pio.save_store(a, path)
    assert path.read_bytes() == b_bytes  # B's work survives
    assert list(tmp_path.glob(".shared.pvz.*.tmp")) == []
    pio.save_store(a, path, overwrite=True)
    assert pio.load_store(path).find(SampleRecord) == [Key()]
    # a study loaded from the file may save over it; a fresh study may replace an old file
    loaded = pv.Study.load(path)
    loaded.save(path)
    pio.save_store(_copy_store(study.store), path)
    with zipfile.ZipFile(path) as zf:
        assert isinstance(json.loads(zf.read("manifest.json"))["generation"], str)
