"""A small harness: a throw-away JupyterLab server + headless Chromium (Playwright), with WebGL draw
calls instrumented so the time of the first frame that draws all points can be read.

Used by the render and scrubbing sections. Self-contained on purpose (the test suite's e2e harness
asserts what a person sees; this one times frames).

How a frame is timed: an init script wraps ``drawArrays``/``drawElements`` (+ instanced variants,
WebGL1 ANGLE extension included) and ``requestAnimationFrame``. Every draw call records the
timestamp of the animation frame it belongs to and how many vertices/instances it drew. A "full
frame" is an animation frame whose draws add up to at least the expected number of points; it is
"presented" at the start of the next animation frame (the browser only starts a new frame once the
last one was handed to the compositor), which is what we report.

Points drawn without a point draw call count too: our widget's CPU point path (points splatted in JS
and shown as one textured quad, chosen where WebGL is software) marks each frame with a user-timing
mark ``patternviz:points`` whose ``detail.count`` is the points it drew; the init script records it
like a draw call of that many vertices, in the same animation frame.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("PV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",
]

INIT_SCRIPT = r"""
(() => {
  const W = window;
  W.__pv = { draws: [], uploads: [], frame: -1, frameSeq: 0, presented: [], ws: [] };
  // websocket messages as the page receives them (page clock, the frames' clock): [time, size]
  const WS = W.WebSocket;
  if (WS) {
    W.WebSocket = new Proxy(WS, {
      construct(T, args) {
        const s = new T(...args);
        // the kernel's channels apart from Jupyter's other sockets (events, terminals), whose JSON
        // text messages are Jupyter's own and not in the kernel protocol's frames
        const kernel = /\/channels(\?|$)/.test(String(args[0]));
        s.addEventListener("message", (e) => {
          const d = e.data;
          const n = typeof d === "string" ? d.length : d ? (d.byteLength !== undefined ? d.byteLength : d.size || 0) : 0;
          // the message itself too, while a measurement asks for it (wsKeep): read after the frame
          W.__pv.ws.push(W.__pv.wsKeep ? [performance.now(), n, d, kernel] : [performance.now(), n]);
        });
        return s;
      },
    });
  }
  // What the kept messages between two page moments carry, byte for byte, from the frames themselves
  // (Jupyter's v1 kernel websocket protocol: a uint64 count, uint64 offsets, then channel, header,
  // parent header, metadata, content, buffers): 'bundle' = the JSON string values of the widgets'
  // _esm and _css as they travel (escaped, quotes included) in comm messages; 'widget' = the rest of
  // the comm messages' content and their binary buffers (the widgets' state and data); 'jupyter' =
  // everything else (the offset tables, channel, headers and metadata of every message, and every
  // other message: status, execute_input/reply, display_data, ..., and those of Jupyter's other
  // sockets, the events socket's JSON text among them).
  W.__pv.wsBreakdown = (a, b) => {
    const enc = new TextEncoder(), dec = new TextDecoder();
    const out = { total: 0, bundle: 0, widget: 0, jupyter: 0, messages: 0, unparsed: 0, types: {} };
    const valueBytes = (s, key) => {            // bytes of every JSON string value of "key"
      let n = 0, i = 0;
      for (;;) {
        i = s.indexOf('"' + key + '"', i);
        if (i < 0) return n;
        let j = i + key.length + 2;
        while (j < s.length && (s[j] === " " || s[j] === ":")) j++;
        if (s[j] !== '"') { i = j; continue; }
        let e = j + 1;
        while (e < s.length && s.charCodeAt(e) !== 34) e += s.charCodeAt(e) === 92 ? 2 : 1;
        n += enc.encode(s.slice(j, e + 1)).length;
        i = e + 1;
      }
    };
    for (const [t, size, d, kernel] of W.__pv.ws) {
      if (t < a || t > b) continue;
      out.total += size; out.messages += 1;
      if (kernel === false) {                    // another of Jupyter's sockets: all Jupyter's own
        out.jupyter += size; out.types["(other socket)"] = (out.types["(other socket)"] || 0) + size;
        continue;
      }
      let parts = null;
      if (d && d.byteLength !== undefined && d.byteLength >= 16) {
        const v = new DataView(d), k = Number(v.getBigUint64(0, true));
        if (k >= 6 && k < 4096 && 8 * (k + 1) <= d.byteLength) {
          const off = [];
          for (let i = 0; i < k; i++) off.push(Number(v.getBigUint64(8 * (i + 1), true)));
          if (off.every((o, i) => o <= d.byteLength && (i === 0 || o >= off[i - 1])) && off[k - 1] === d.byteLength)
            parts = off;
        }
      }
      if (!parts) { out.unparsed += size; out.jupyter += size; continue; }
      const part = (i) => new Uint8Array(d, parts[i], parts[i + 1] - parts[i]);
      let type = "?";
      try { type = JSON.parse(dec.decode(part(1))).msg_type || "?"; } catch (e) { /* keep '?' */ }
      out.types[type] = (out.types[type] || 0) + size;
      if (type === "comm_open" || type === "comm_msg") {
        const content = part(4), text = dec.decode(content);
        const bundle = valueBytes(text, "_esm") + valueBytes(text, "_css");
        const buffers = parts[parts.length - 1] - parts[5];
        out.bundle += bundle;
        out.widget += content.length - bundle + buffers;
        out.jupyter += size - content.length - buffers;
      } else out.jupyter += size;
    }
    return out;
  };
  const rAF = W.requestAnimationFrame.bind(W);
  W.requestAnimationFrame = (cb) => rAF((ts) => {
    if (W.__pv.frame !== ts) { W.__pv.frame = ts; W.__pv.frameSeq += 1; }
    return cb(ts);
  });
  // a frame clock of our own, so "presented" is known even when the page stops animating
  const tick = (ts) => {
    const p = W.__pv;
    if (p.pending !== undefined) { p.presented.push([p.pending, performance.now()]); p.pending = undefined; }
    rAF(tick);
  };
  rAF(tick);
  const rec = (count) => {
    const p = W.__pv;
    if (count < 1000) return;                      // ignore UI quads, labels, axes
    const seq = p.frameSeq;
    p.draws.push([seq, performance.now(), count]);
    p.pending = seq;
  };
  const wrap = (proto, name, countOf) => {
    if (!proto || !proto[name]) return;
    const orig = proto[name];
    proto[name] = function (...a) { rec(countOf(a)); return orig.apply(this, a); };
  };
  for (const P of [W.WebGLRenderingContext, W.WebGL2RenderingContext]) {
    if (!P) continue;
    wrap(P.prototype, "drawArrays", (a) => a[2]);
    wrap(P.prototype, "drawElements", (a) => a[1]);
    // buffer uploads (bytes), so "a frame with new data" can be told from a redraw of old data
    const bd = P.prototype.bufferData;
    P.prototype.bufferData = function (...a) {
      const n = a[1] && a[1].byteLength;
      if (n >= 12000) W.__pv.uploads.push([performance.now(), n]);
      return bd.apply(this, a);
    };
  }
  // points drawn on the CPU (no point draw call): the widget's user-timing mark says how many
  const mark = W.performance.mark.bind(W.performance);
  W.performance.mark = function (name, opts) {
    if (name === "patternviz:points" && opts && opts.detail) rec(opts.detail.count | 0);
    return mark(name, opts);
  };
  if (W.WebGL2RenderingContext) {
    const p2 = W.WebGL2RenderingContext.prototype;
    wrap(p2, "drawArraysInstanced", (a) => Math.max(a[2], a[3]));
    wrap(p2, "drawElementsInstanced", (a) => Math.max(a[1], a[4]));
  }
  const getExt = W.WebGLRenderingContext && W.WebGLRenderingContext.prototype.getExtension;
  if (getExt) {
    W.WebGLRenderingContext.prototype.getExtension = function (name) {
      const ext = getExt.call(this, name);
      if (ext && name === "ANGLE_instanced_arrays" && !ext.__pvWrapped) {
        const p = Object.getPrototypeOf(ext);
        wrap(p, "drawArraysInstancedANGLE", (a) => Math.max(a[2], a[3]));
        wrap(p, "drawElementsInstancedANGLE", (a) => Math.max(a[1], a[4]));
        ext.__pvWrapped = true;
      }
      return ext;
    };
  }
})();
"""

# Summarise the draw log in the page: frames (by sequence) whose draws sum to >= n points.
FULL_FRAMES_JS = r"""
([n, since]) => {
  const p = window.__pv, by = new Map();
  for (const [seq, t, c] of p.draws) {
    if (t < since) continue;
    const f = by.get(seq) || { seq, t0: t, t1: t, count: 0 };
    f.t1 = t; f.count += c; by.set(seq, f);
  }
  const pres = new Map(p.presented.map(([s, t]) => [s, t]));
  return [...by.values()].filter((f) => f.count >= n)
    .map((f) => ({ seq: f.seq, drawn: f.t1, presented: pres.has(f.seq) ? pres.get(f.seq) : null,
                   count: f.count }));
}
"""


def webgl_renderer(page: Any) -> str:
    """The WebGL renderer string of this browser (SwiftShader = software rendering)."""
    return page.evaluate(
        "() => { const gl = document.createElement('canvas').getContext('webgl');"
        " if (!gl) return 'no WebGL'; const e = gl.getExtension('WEBGL_debug_renderer_info');"
        " return e ? gl.getParameter(e.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); }"
    )


def first_upload(page: Any, min_bytes: int, since_ms: float) -> float | None:
    """Page time of the first buffer upload of at least ``min_bytes`` after ``since_ms``."""
    return page.evaluate(
        "([b, s]) => { const u = window.__pv.uploads.find(([t, n]) => t >= s && n >= b); return u ? u[0] : null; }",
        [int(min_bytes), float(since_ms)],
    )


def received_between(page: Any, t_from: float, t_to: float) -> int:
    """Bytes received over the kernel websocket between two ``time.time()`` moments (as Playwright
    reports them to Python: late for large frames; :func:`page_received_between` is exact)."""
    return sum(n for t, n in getattr(page, "ws_log", []) if t_from <= t <= t_to)


def page_received_between(page: Any, t_from_ms: float, t_to_ms: float) -> int | None:
    """Bytes (characters of text frames) the page received over its websockets between two page
    clock moments (ms), counted when each message reached the page's JS; None without the log."""
    return page.evaluate(
        "([a, b]) => { const w = window.__pv && window.__pv.ws; if (!w) return null;"
        " let n = 0; for (const [t, s] of w) if (t >= a && t <= b) n += s; return n; }",
        [float(t_from_ms), float(t_to_ms)],
    )


def keep_messages(page: Any, keep: bool = True) -> None:
    """Keep the websocket messages the page receives from now (``keep``), for
    :func:`received_breakdown`; ``keep=False`` stops and drops the kept ones (memory)."""
    page.evaluate(
        "(k) => { const p = window.__pv; if (!p) return; p.wsKeep = k;"
        " if (!k) p.ws = p.ws.map((m) => m.slice(0, 2)); }",
        bool(keep),
    )


def received_breakdown(page: Any, t_from_ms: float, t_to_ms: float) -> dict | None:
    """Bytes the page received between two page clock moments, read from the kept messages
    (:func:`keep_messages`): ``total``, ``bundle`` (the widgets' _esm/_css as they travel),
    ``widget`` (the rest of the comm messages' content and buffers), ``jupyter`` (the rest),
    ``types`` (bytes per message type); None without the log."""
    return page.evaluate(
        "([a, b]) => window.__pv && window.__pv.wsBreakdown ? window.__pv.wsBreakdown(a, b) : null",
        [float(t_from_ms), float(t_to_ms)],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyterlab(root: Path, timeout_s: float = 90.0):
    """Start JupyterLab on a free port serving ``root``; yield its base URL; stop it after."""
    port = free_port()
    cfg = Path(tempfile.mkdtemp(prefix="pvbench_lab_"))
    settings = cfg / "settings" / "@jupyterlab"
    for ext, body in {
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }.items():
        f = settings / ext
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(body))
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(cfg / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(cfg / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(cfg / "runtime"),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent)
        + os.pathsep
        + os.environ.get("PYTHONPATH", ""),
    )
    log = open(cfg / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--allow-root",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            # unix sockets under the short runtime dir above (paths < ~107 chars), not TCP ports
            # that another process can take before the kernel binds them
            "--KernelManager.transport=ipc",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() - t0 > timeout_s:
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (cfg / "server.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def chromium(viewport: tuple[int, int] = (1280, 900), device_scale_factor: float = 1):
    """Yield a Playwright page in headless Chromium with the draw-call instrumentation."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]},
                device_scale_factor=device_scale_factor,
            )
            ctx.add_init_script(INIT_SCRIPT)
            page = ctx.new_page()
            counter = {"received": 0, "sent": 0}
            log: list[tuple[float, int]] = []  # (time.time(), bytes) of every frame received

            def on_ws(ws: Any) -> None:
                def size(payload: Any) -> int:
                    return len(payload) if isinstance(payload, (bytes, str)) else 0

                def received(p: Any) -> None:
                    counter["received"] += size(p)
                    log.append((time.time(), size(p)))

                ws.on("framereceived", received)
                ws.on("framesent", lambda p: counter.__setitem__("sent", counter["sent"] + size(p)))

            page.on("websocket", on_ws)
            page.ws_bytes = counter  # type: ignore[attr-defined]  (bytes over the kernel websocket)
            page.ws_log = log  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


def write_notebook(path: Path, cells: list[str]) -> None:
    """Write a notebook of code cells (python3 kernel)."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": src,
            }
            for src in cells
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


def open_notebook(page: Any, url: str, name: str, timeout_s: float = 120.0) -> None:
    """Open ``name`` in JupyterLab and wait until its kernel is idle."""
    page.goto(f"{url}/lab/tree/{name}", timeout=timeout_s * 1000)
    page.wait_for_selector(".jp-Notebook:visible .jp-Cell", timeout=timeout_s * 1000)
    page.wait_for_function(
        "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator, .jp-KernelStatus');"
        " return !s || /idle/i.test(s.getAttribute('data-status') || s.textContent || 'idle'); }",
        timeout=timeout_s * 1000,
    )
    time.sleep(1.0)


def run_cell(page: Any, index: int, timeout_s: float = 600.0, wait: bool = True) -> float:
    """Execute cell ``index``; return the page clock (ms) right before the keypress."""
    cell = page.locator(".jp-Notebook:visible .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputArea-prompt")
    before = prompt.inner_text()
    for _ in range(5):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Escape")  # command mode: Ctrl+Enter runs without moving on
        t0 = page.evaluate("() => performance.now()")
        page.pressed_at = time.time()  # the same moment on this machine's clock (websocket log)
        page.keyboard.press("Control+Enter")
        # a notebook of many cells still laying itself out can swallow the keypress: try again
        # when the prompt shows neither "[*]" nor a new count within a few seconds
        deadline = time.time() + 5
        while time.time() < deadline and prompt.inner_text() == before:
            time.sleep(0.05)
        if prompt.inner_text() != before:
            break
    if wait:
        wait_cell(page, index, timeout_s)
    return t0


def wait_cell(page: Any, index: int, timeout_s: float = 600.0) -> None:
    """Wait until cell ``index`` shows an execution count; raise with its error output if it failed."""
    prompt = (
        page.locator(".jp-Notebook:visible .jp-Cell").nth(index).locator(".jp-InputArea-prompt")
    )
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        text = prompt.inner_text()
        if "[" in text and "*" not in text and any(ch.isdigit() for ch in text):
            break
        time.sleep(0.05)
    else:
        raise TimeoutError(f"cell {index} did not finish in {timeout_s} s")
    err = (
        page.locator(".jp-Notebook:visible .jp-Cell")
        .nth(index)
        .locator(
            "[data-mime-type='application/vnd.jupyter.stderr'], .jp-RenderedText[data-mime-type*='error']"
        )
    )
    if err.count():
        txt = err.first.inner_text()
        if "Traceback" in txt or "Error" in txt:
            raise RuntimeError(f"cell {index} failed:\n{txt[-1500:]}")


def full_frames(page: Any, n_points: int, since_ms: float) -> list[dict]:
    """Frames after ``since_ms`` (page clock) whose draw calls cover at least ``n_points``."""
    return page.evaluate(FULL_FRAMES_JS, [int(n_points), float(since_ms)])


def wait_full_frame(page: Any, n_points: int, since_ms: float, timeout_s: float = 300.0) -> dict:
    """Wait for the first full, presented frame after ``since_ms``; return it."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        frames = [f for f in full_frames(page, n_points, since_ms) if f["presented"] is not None]
        if frames:
            return frames[0]
        time.sleep(0.02)
    raise TimeoutError(f"no frame drew {n_points:,} points within {timeout_s} s")


def largest_canvas_box(page: Any, cell_index: int) -> dict:
    """Bounding box of the largest canvas in the output of cell ``cell_index``."""
    canvases = (
        page.locator(".jp-Notebook:visible .jp-Cell")
        .nth(cell_index)
        .locator(".jp-OutputArea canvas")
    )
    boxes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
    boxes = [b for b in boxes if b and b["width"] * b["height"] > 0]
    if not boxes:
        raise RuntimeError(f"no canvas in the output of cell {cell_index}")
    return max(boxes, key=lambda b: b["width"] * b["height"])


def drag_frames(page: Any, box: dict, n_points: int, steps: int = 40, button: str = "left") -> dict:
    """Drag across ``box`` in ``steps`` moves; return frame statistics of the redraws it caused."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    dx = box["width"] * 0.25
    since = page.evaluate("() => performance.now()")
    page.mouse.move(cx - dx, cy)
    page.mouse.down(button=button)
    for i in range(1, steps + 1):
        page.mouse.move(cx - dx + 2 * dx * i / steps, cy + 0.1 * dx * (i % 2))
    page.mouse.up(button=button)
    time.sleep(1.0)
    end = page.evaluate("() => performance.now()")
    frames = [f for f in full_frames(page, n_points, since) if f["presented"] is not None]
    # frames that drew points at all (>= 1000): more of them than full frames = level-of-detail
    any_points = [f for f in full_frames(page, 1000, since) if f["presented"] is not None]
    times = [f["presented"] for f in frames]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    out: dict[str, Any] = {
        "frames": len(frames),
        "frames_with_points": len(any_points),
        "moves": steps,
        "span_ms": round(end - since, 1),
    }
    if gaps:
        out.update(
            median_frame_ms=round(statistics.median(gaps), 1),
            p95_frame_ms=round(gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))], 1),
            mean_frame_ms=round((times[-1] - times[0]) / (len(times) - 1), 1),
        )
        out["fps"] = round(1000.0 / out["mean_frame_ms"], 2) if out["mean_frame_ms"] > 0 else None
    return out


def cell_text(page: Any, index: int, limit: int = 600) -> str:
    """The visible text of cell ``index``'s output (status lines, errors), for error reports."""
    out = page.locator(".jp-Notebook:visible .jp-Cell").nth(index).locator(".jp-OutputArea")
    try:
        return " ".join(out.inner_text(timeout=2000).split())[-limit:]
    except Exception:  # noqa: BLE001
        return ""
