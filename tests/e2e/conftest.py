"""Fixtures for browser tests: ``lab_server`` (session), ``browser`` (session), ``page`` (per test).

Usage::

    from e2e._harness import open_notebook, kernel_exec

    def test_something(lab_server, page):
        name = lab_server.add_notebook("01_quickstart.ipynb")
        open_notebook(page, name)
        assert "42" in kernel_exec(page, "print(w.epoch)")

On a failure the page's screenshot, its console log and the server log tail are written to
tests/artifacts/<test id>/ (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e._harness import (
    ARTIFACTS,
    CHROMIUM,
    VIEWPORT,
    LabServer,
    launch_chromium,
    on_ci,
    start_lab_server,
)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab server on a free 127.0.0.1 port, temporary root, no token."""
    server = start_lab_server(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless /usr/bin/chromium via Playwright (fresh temporary profile)."""
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} is missing: 'apt-get install -y chromium'"
        if on_ci():
            pytest.fail(msg + " (browser tests never skip on CI)", pytrace=False)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any, lab_server: LabServer) -> Iterator[Any]:
    """A fresh browser page (own context) that knows the server; kernels are shut down after."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.pv_base_url = lab_server.url
    context.pv_server = lab_server
    context.pv_kernels = {}
    console: list[str] = []
    context.pv_console = console
    pg = context.new_page()
    pg.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    pg.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    try:
        yield pg
    finally:
        for conn in context.pv_kernels.values():
            conn.close()
        context.close()
        lab_server.shutdown_sessions()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when not in ("setup", "call") or not rep.failed:
        return
    pg = getattr(item, "funcargs", {}).get("page")
    server = getattr(item, "funcargs", {}).get("lab_server")
    if pg is None and server is None:
        return
    out = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    if pg is not None:
        try:
            pg.screenshot(path=str(out / "screenshot.png"), full_page=True, timeout=15_000)
            saved.append("screenshot.png")
        except Exception as e:  # noqa: BLE001 - best effort, never mask the real failure
            (out / "screenshot-error.txt").write_text(repr(e))
        (out / "console.log").write_text("\n".join(getattr(pg.context, "pv_console", [])) + "\n")
        saved.append("console.log")
    if server is not None:
        (out / "server.log").write_text(server.log_tail(400) + "\n")
        saved.append("server.log")
    rep.sections.append(("e2e artifacts", f"{out}: {', '.join(saved)}"))
