"""Real-browser test harness: a JupyterLab server, headless Chromium, and helpers to drive them.

Fixtures live in tests/e2e/conftest.py; e2e tests import helpers from here::

    from e2e._harness import open_notebook, kernel_exec, element_image, count_foreground

Everything is real: a ``python -m jupyter lab`` subprocess on a free 127.0.0.1 port with a
temporary root, Debian's /usr/bin/chromium driven by Playwright, and a second ``jupyter_client``
on the notebook's kernel to read and set Python state while the page is open.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
]
VIEWPORT = {"width": 1280, "height": 900}
#: JupyterLab / Notebook 7 user settings for every test server: no news or update toasts over the
#: page (and no network), and no notebook windowing, so every cell and output is in the DOM.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


def synthetic_widget_notebook(n_images: int, intro: str | None = None) -> Any:
    """A notebook of one cell showing ``pv.PatternViz`` on the synthetic study of the figure tests
    (``tests/figures/figure_synth.py``: 3 classes, a 6×6 grid per image), opened on features.9."""
    import nbformat

    figures = REPO / "tests" / "figures"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(intro)] if intro else []
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import sys\n"
            f"sys.path.insert(0, {str(figures)!r})\n"
            "from figure_synth import make_store\n"
            "import patternviz_widget as pv\n"
            "from patternviz_widget.figures._data import as_study\n"
            f"study = as_study(make_store(n_images={int(n_images)}, grid=6))\n"
            "w = pv.PatternViz(study, layer='features.9')\n"
            "w"
        )
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def on_ci() -> bool:
    """True under CI (CI=true), where browser tests must fail rather than skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# ---- JupyterLab server -------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A running ``jupyter lab`` subprocess with a temporary root directory and no token."""

    root: Path
    port: int
    runtime_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle
    def start(self, timeout: float = 90.0) -> LabServer:
        """Start the server and return self once ``/api/status`` answers."""
        home = self.root.parent
        config_dir, data_dir = home / "jupyter_config", home / "jupyter_data"
        # Default user-settings dir of both JupyterLab and Notebook 7 (under JUPYTER_CONFIG_DIR).
        settings_dir, workspaces_dir = config_dir / "lab" / "user-settings", home / "lab_workspaces"
        for d in (config_dir, data_dir, settings_dir, workspaces_dir, self.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)
        for plugin, values in USER_SETTINGS.items():
            path = settings_dir / (plugin.replace(":", "/") + ".jupyterlab-settings")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(data_dir),
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PATTERNVIZ_FAST": os.environ.get("PATTERNVIZ_FAST", "1"),
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "agg",
        }
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
            f"--LabApp.workspaces_dir={workspaces_dir}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # unix sockets, not TCP ports: a port jupyter_client found free can be taken by
            # another process before the kernel binds it ("ZMQError: Address already in use")
            "--KernelManager.transport=ipc",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                self.api("GET", "/api/status", timeout=2)
                return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"jupyter lab did not answer /api/status within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Shut the server (and its kernels) down."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.api("POST", "/api/shutdown", timeout=5)
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def log_tail(self, n: int = 60) -> str:
        """Last ``n`` lines of the server log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    # -- REST
    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """Call the server's REST API and return the decoded JSON (None for empty replies)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    # -- notebooks in the root
    def add_notebook(self, source: str | Path | Any, name: str | None = None) -> str:
        """Put a notebook into the server root and return its name (path relative to the root).

        ``source`` is a file name in ``notebooks/``, a path, or an ``nbformat`` notebook node
        (then ``name`` is required).
        """
        if hasattr(source, "cells"):
            import nbformat

            if not name:
                raise ValueError(
                    "add_notebook(nb, name=...) needs a name for an in-memory notebook"
                )
            nbformat.write(source, self.root / name)
            return name
        path = Path(source)
        if not path.is_absolute() and not path.exists():
            path = NOTEBOOKS / path
        if not path.exists():
            raise FileNotFoundError(f"notebook {source!r} not found (looked in {NOTEBOOKS})")
        name = name or path.name
        shutil.copy(path, self.root / name)
        # Data files beside it (e.g. a saved study) are copied only when a test asks for them.
        return name

    def sessions(self) -> list[dict]:
        """The server's open sessions (``/api/sessions``)."""
        return self.api("GET", "/api/sessions")

    def kernel_id(self, notebook: str, timeout: float = 30) -> str:
        """Return the id of the kernel of the session whose path is ``notebook``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.sessions():
                if s.get("path") == notebook and s.get("kernel"):
                    return s["kernel"]["id"]
            time.sleep(0.2)
        raise AssertionError(f"no kernel session for {notebook!r}; sessions: {self.sessions()}")

    def shutdown_sessions(self) -> None:
        """Close every session (and its kernel); used between tests."""
        for s in self.sessions():
            try:
                self.api("DELETE", f"/api/sessions/{s['id']}")
            except OSError:
                pass


def start_lab_server(base: Path) -> LabServer:
    """Start a JupyterLab server with root ``base/root`` and return it."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    server = LabServer(
        root=root, port=free_port(), runtime_dir=short_runtime_dir(), log_path=base / "server.log"
    )
    return server.start()


def short_runtime_dir() -> Path:
    """A fresh runtime dir with a short path: kernels talk over unix sockets there
    (``runtime/kernel-<uuid>-ipc-<n>``), whose paths must stay under ~107 characters."""
    return Path(tempfile.mkdtemp(prefix="pvrt", dir="/tmp" if os.path.isdir("/tmp") else None))


# ---- Chromium ------------------------------------------------------------------------------------


def launch_chromium(playwright: Any) -> Any:
    """Launch /usr/bin/chromium headless (fresh temporary profile) and return the Browser."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def webgl2_renderer(page: Any) -> str | None:
    """Return the WebGL2 renderer string of ``page``, or None when WebGL2 is unavailable."""
    return page.evaluate(
        """() => {
          const gl = document.createElement('canvas').getContext('webgl2');
          if (!gl) return null;
          const info = gl.getExtension('WEBGL_debug_renderer_info');
          return String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
        }"""
    )


# ---- notebooks in the page -----------------------------------------------------------------------

_NOTEBOOK_STATE_JS = """() => {
  const app = window.jupyterapp;
  const nb = app && app.shell.currentWidget;
  if (!nb || !nb.content || !nb.sessionContext) return null;
  const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
  const cells = [];
  for (const cell of nb.content.widgets) {
    const m = cell.model;
    if (m.type !== 'code') continue;
    const errors = [];
    for (let i = 0; i < m.outputs.length; i++) {
      const o = m.outputs.get(i).toJSON();
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n'));
    }
    cells.push({count: m.executionCount, errors, source: m.sharedModel.getSource().slice(0, 200)});
  }
  return {kernel: kernel ? kernel.status : null, cells, done: window.__pvRunAll || null};
}"""


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _wait_app(page: Any, timeout_ms: float) -> None:
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell && window.jupyterapp.commands",
        timeout=timeout_ms,
    )


def wait_kernel_idle(page: Any, name: str, timeout_ms: float) -> None:
    """Wait until notebook ``name`` is the current widget and its kernel is up (ready + idle)."""
    page.wait_for_function(
        """(name) => {
          const nb = window.jupyterapp.shell.currentWidget;
          if (!nb || !nb.context || nb.context.path !== name || !nb.sessionContext) return false;
          const s = nb.sessionContext.session;
          return nb.sessionContext.isReady && s && s.kernel && s.kernel.status === 'idle';
        }""",
        arg=name,
        timeout=timeout_ms,
    )


def _run_all_and_wait(page: Any, name: str, timeout: float, allow_errors: bool) -> Any:
    t_ms = timeout * 1000
    wait_kernel_idle(page, name, t_ms)
    page.evaluate(
        """() => {
          window.__pvRunAll = null;
          window.jupyterapp.commands.execute('notebook:run-all-cells')
            .then(() => { window.__pvRunAll = 'done'; }, (e) => { window.__pvRunAll = 'error: ' + e; });
        }"""
    )
    # Finished: the command resolved, the kernel is idle, and every code cell ran (or one failed,
    # which stops "run all").
    page.wait_for_function(
        f"""() => {{
          const s = ({_NOTEBOOK_STATE_JS})();
          if (!s || !s.done || s.kernel !== 'idle') return false;
          return s.cells.every(c => c.count !== null) || s.cells.some(c => c.errors.length > 0);
        }}""",
        timeout=t_ms,
        polling=200,
    )
    state = page.evaluate(_NOTEBOOK_STATE_JS)
    errors = [e for c in state["cells"] for e in c["errors"]]
    if errors and not allow_errors:
        raise AssertionError(
            f"notebook {name!r} raised in a cell:\n" + _strip_ansi("\n\n".join(errors))
        )
    not_run = [c["source"] for c in state["cells"] if c["count"] is None]
    if not_run and not allow_errors:
        raise AssertionError(f"notebook {name!r}: cells did not run: {not_run}")
    return page


def open_notebook(
    page: Any, name: str, *, run: bool = True, timeout: float = 240, allow_errors: bool = False
) -> Any:
    """Open notebook ``name`` (relative to the server root) in JupyterLab, run all cells, return the page.

    Waits for the app, the notebook, its kernel (idle), then runs ``notebook:run-all-cells`` and
    waits until the command resolved, the kernel is idle and every code cell has an execution
    count. A cell that raised fails the test with its traceback unless ``allow_errors``.
    The page must come from the ``page`` fixture (which knows the server URL).
    """
    base = page.context.pv_base_url
    page.goto(f"{base}/lab/tree/{urllib.parse.quote(name)}", timeout=timeout * 1000)
    _wait_app(page, timeout * 1000)
    # the visible one: JupyterLab restores the tabs of earlier tests, whose notebooks are hidden
    page.locator(".jp-Notebook:visible").first.wait_for(timeout=timeout * 1000)
    if run:
        _run_all_and_wait(page, name, timeout, allow_errors)
    return page


def open_notebook7(
    page: Any, name: str, *, run: bool = True, timeout: float = 240, allow_errors: bool = False
) -> Any:
    """Like :func:`open_notebook` in Notebook 7: visit ``/tree``, then ``/notebooks/<name>``, run all."""
    base = page.context.pv_base_url
    page.goto(f"{base}/tree", timeout=timeout * 1000)
    page.wait_for_selector(".jp-DirListing", timeout=timeout * 1000)
    page.goto(f"{base}/notebooks/{urllib.parse.quote(name)}", timeout=timeout * 1000)
    _wait_app(page, timeout * 1000)
    # the visible one: JupyterLab restores the tabs of earlier tests, whose notebooks are hidden
    page.locator(".jp-Notebook:visible").first.wait_for(timeout=timeout * 1000)
    if run:
        _run_all_and_wait(page, name, timeout, allow_errors)
    return page


def output_texts(page: Any) -> list[str]:
    """Visible text of every output area of the current notebook (in order)."""
    return [t.strip() for t in page.locator(".jp-OutputArea-output").all_inner_texts()]


# ---- a second client on the notebook's kernel ----------------------------------------------------


class KernelConnection:
    """A ``jupyter_client`` connection to the kernel of an open notebook.

    ``exec(code)`` runs code in the notebook's namespace and returns what it printed (plus the
    text/plain of the last expression); a Python error raises AssertionError with the traceback.
    """

    def __init__(self, server: LabServer, notebook: str, timeout: float = 60):
        from jupyter_client import BlockingKernelClient

        kid = server.kernel_id(notebook, timeout=timeout)
        conn = server.runtime_dir / f"kernel-{kid}.json"
        deadline = time.monotonic() + timeout
        while not conn.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not conn.exists():
            found = sorted(p.name for p in server.runtime_dir.glob("kernel-*.json"))
            raise AssertionError(f"connection file {conn} missing; runtime dir has {found}")
        self.kernel_id = kid
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(conn))
        self.client.start_channels()
        self.client.wait_for_ready(timeout=timeout)

    def exec(self, code: str, timeout: float = 60) -> str:
        """Run ``code`` in the kernel and return its text output (stdout + last value)."""
        msg_id = self.client.execute(code, store_history=False, allow_stdin=False)
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"kernel_exec timed out after {timeout} s running:\n{code}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except Exception:  # queue.Empty
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content.get("data", {}).get("text/plain", "") + "\n")
            elif kind == "error":
                tb = _strip_ansi("\n".join(content.get("traceback", [])))
                raise AssertionError(
                    f"kernel_exec raised {content['ename']}: {content['evalue']}\n{tb}"
                )
            elif kind == "status" and content["execution_state"] == "idle":
                break
        return "".join(out).strip()

    def close(self) -> None:
        """Stop the client's channels (the kernel keeps running)."""
        self.client.stop_channels()


def kernel_exec(page: Any, code: str, timeout: float = 60) -> str:
    """Run ``code`` in the kernel of the notebook open in ``page`` and return its text output.

    Connects a second ``jupyter_client`` on first use (kernel id from ``/api/sessions``,
    connection file from the server's runtime dir) and reuses it for this page.
    """
    name = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    conns: dict[str, KernelConnection] = page.context.pv_kernels
    if name not in conns:
        conns[name] = KernelConnection(page.context.pv_server, name)
    return conns[name].exec(code, timeout=timeout)


# ---- pixels --------------------------------------------------------------------------------------


def element_image(locator: Any) -> np.ndarray:
    """Return what ``locator`` shows on screen as uint8 H×W×3 (works for WebGL canvases)."""
    from PIL import Image

    locator.scroll_into_view_if_needed()
    png = locator.screenshot(animations="disabled")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def background_color(img: np.ndarray) -> np.ndarray:
    """The most common colour of ``img`` (uint8[3]) — the background of a sparse plot."""
    flat = img.reshape(-1, 3)
    colors, counts = np.unique(flat, axis=0, return_counts=True)
    return colors[np.argmax(counts)]


def foreground_mask(
    img: np.ndarray, background: np.ndarray | None = None, tol: int = 24
) -> np.ndarray:
    """Bool H×W: pixels differing from ``background`` (default: the most common colour) by > tol."""
    bg = background_color(img) if background is None else np.asarray(background, dtype=np.int16)
    return np.abs(img.astype(np.int16) - bg.astype(np.int16)).max(axis=2) > tol


def count_foreground(img: np.ndarray, background: np.ndarray | None = None, tol: int = 24) -> int:
    """Number of non-background pixels in ``img``."""
    return int(foreground_mask(img, background, tol).sum())


def colored_mask(img: np.ndarray, min_chroma: int = 40) -> np.ndarray:
    """Bool H×W: saturated pixels (max−min channel > min_chroma), i.e. not white/grey/black."""
    i = img.astype(np.int16)
    return (i.max(axis=2) - i.min(axis=2)) > min_chroma


def centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """(x, y) pixel centroid of a bool mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def save_png(img: np.ndarray, path: str | Path) -> Path:
    """Write an H×W×3 uint8 image to ``path`` and return the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def make_tempdir(prefix: str) -> Path:
    """A fresh temporary directory (for callers outside pytest's tmp_path)."""
    return Path(tempfile.mkdtemp(prefix=prefix))
