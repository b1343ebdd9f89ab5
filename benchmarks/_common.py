"""Shared helpers: machine description, subprocess workers with peak RSS, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """Return a small description of this machine: CPU, cores, RAM, load, torch, device."""
    import psutil
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": cuda,
        "platform": platform.platform(),
    }


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, which starts afresh with each exec. Not ``ru_maxrss``:
    Linux keeps it across fork + exec, so a worker started by a 1 GiB parent reported the parent's
    peak (every method of a run showed the same 982 MiB)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Current resident set size of this process, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def run_worker(func: str, kwargs: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run ``benchmarks._worker`` on ``func`` ("module:function") in a fresh Python process.

    Returns the function's result dict plus ``peak_rss_mb`` (the child's whole-life peak RSS) and
    ``rss_before_mb`` (its RSS right before the call, i.e. after imports and input loading, when the
    function reports it). On timeout returns ``{"status": "timeout", "limit_s": timeout_s}``; on a
    crash ``{"status": "error", "error": <last lines of stderr>}``.
    """
    with tempfile.TemporaryDirectory(prefix="pvbench_") as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.json"
        spec.write_text(json.dumps({"func": func, "kwargs": kwargs, "out": str(out)}))
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks._worker", str(spec)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "limit_s": timeout_s, "wall_s": time.perf_counter() - t0}
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-8:])
            return {"status": "error", "error": tail, "returncode": proc.returncode}
        res = json.loads(out.read_text())
        res.setdefault("status", "ok")
        return res


def write_json(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``data`` to ``<out_dir>/<name>.json`` (pretty, sorted) and return the path."""
    out_dir = Path(out_dir or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o)}")


def fmt_s(x: float | None) -> str:
    """Seconds for a table: 0.012 s, 1.3 s, 75 s, 12.5 min."""
    if x is None:
        return "—"
    if x >= 600:
        return f"{x / 60:.1f} min"
    if x >= 10:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.1f} s"
    return f"{x * 1000:.0f} ms" if x >= 0.001 else f"{x * 1e6:.0f} µs"
