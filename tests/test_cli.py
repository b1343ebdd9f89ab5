"""The command line: --help documents every command; `figures` and `table` work from a saved study;
`demo --fast` runs end to end, and an interrupted demo continues where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "figures"))
from figure_synth import make_store  # noqa: E402

from patternviz_widget.cli import build_parser, main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("demo", "figures", "table")


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "patternviz_widget", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_help_documents_every_command():
    out = _run("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout
        sub = _run(command, "--help")
        assert sub.returncode == 0 and "usage:" in sub.stdout and "--" in sub.stdout
    demo = _run("demo", "--help").stdout
    for flag in ("--out", "--epochs", "--device", "--fast"):
        assert flag in demo


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_bad_arguments_are_usage_errors(tmp_path):
    out = _run("figures", str(tmp_path / "x.pvz"), "--out", str(tmp_path), "--formats", "png,gif")
    assert out.returncode == 2 and "formats" in out.stderr
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--epochs", "many"])


def test_figures_and_table_from_a_saved_study(tmp_path):
    from patternviz_widget.results.io import save_store

    path = save_store(make_store(conditions=("clean", "adversarial")), tmp_path / "s.pvz")
    out = _run(
        "figures", str(path), "--out", str(tmp_path / "figs"), "--formats", "png,svg", "--dpi", "50"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    pngs = sorted(p.stem for p in (tmp_path / "figs").glob("*.png"))
    for name in ("knowledge_curve", "sample_embedding", "embedding_features_9", "layer_strip",
                 "highlighted_regions", "forward_construction", "ellipsoids_features_9",
                 "attack_compare", "attack_deltas", "attack_histogram", "attack_trajectory_types"):  # fmt: skip
        assert name in pngs, f"{name} missing; wrote {pngs}; log: {out.stdout[-1500:]}"
    assert len(list((tmp_path / "figs").glob("*.svg"))) == len(pngs)
    table = _run("table", str(path))
    assert table.returncode == 0
    lines = table.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["model", "condition", "epoch", "layer"]
    assert len(lines) == 2 + 2 * 3 * 3  # header, rule, 2 conditions × 3 epochs × 3 layers


def test_a_missing_study_file_is_a_clear_error(tmp_path):
    out = _run("table", str(tmp_path / "nope.pvz"))
    assert out.returncode == 1 and "error:" in out.stderr and "nope.pvz" in out.stderr


def _epochs(path: Path) -> list[int]:
    import patternviz_widget as pv
    from patternviz_widget.results import RegionEmbedding

    store = pv.Study.load(path).store
    return sorted({k.epoch for k in store.find(RegionEmbedding, model="main", condition="clean")})


@pytest.mark.slow
def test_demo_fast_end_to_end(tmp_path):
    out = _run("demo", "--out", str(tmp_path), "--fast", "--formats", "png")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert _epochs(tmp_path / "demo.pvz") == [0, 1, 2]
    assert (tmp_path / "demo_model.pt").exists() and (tmp_path / "distill.pvz").exists()
    figs = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {"knowledge_curve", "layer_strip", "attack_deltas", "distill_histograms"} <= figs, figs
    assert "epoch 2/2 tracked" in out.stdout
    assert "KPs/img" in out.stdout and "adversarial" in out.stdout  # the table, both conditions
    # a second run finds everything done and only redraws
    again = _run("demo", "--out", str(tmp_path), "--fast", "--formats", "png")
    assert again.returncode == 0 and "all 2 epochs already tracked" in again.stdout
    assert "attack: already done" in again.stdout


@pytest.mark.slow
def test_demo_resumes_after_being_killed(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "patternviz_widget", "demo", "--out", str(tmp_path), "--fast",
           "--epochs", "3", "--no-distill", "--formats", "png"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:  # kill right after the first trained epoch is tracked and saved
            seen.append(line)
            if "epoch 1/3 tracked" in line or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert any("epoch 1/3 tracked" in s for s in seen), "".join(seen)[-3000:]
    assert _epochs(tmp_path / "demo.pvz") == [0, 1]  # what was saved survived the kill
    out = _run(
        "demo",
        "--out",
        str(tmp_path),
        "--fast",
        "--epochs",
        "3",
        "--no-distill",
        "--formats",
        "png",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "continuing after epoch 1" in out.stdout
    assert "epoch 0/3 tracked" not in out.stdout and "epoch 1/3 tracked" not in out.stdout
    assert "epoch 2/3 tracked" in out.stdout and "epoch 3/3 tracked" in out.stdout
    assert _epochs(tmp_path / "demo.pvz") == [0, 1, 2, 3]
