"""The widgets in a real JupyterLab, driven by headless Chromium (Playwright).

Starts JupyterLab on loopback, opens a notebook that shows a Dashboard of a synthetic run and a
K2-scale heatmap, runs it, and checks what a user would see: the heatmap canvas has drawn pixels,
the tree lists every node, the panel shows the verdict, choosing a node moves the heatmap's
selection to its tokens, hovering the grid shows a tooltip. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from lab_harness import heatmap_pixels

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing (apt-get install -y chromium); the browser test needs a real browser",
)

CELLS = [
    "from k2nb.widgets import Dashboard, RoutingHeatmap\n"
    "from k2nb.widgets.demo import synthetic_run\n"
    "run = synthetic_run(seed=2)\n"
    "n_nodes = len(run.trajectory.nodes)",
    "dash = Dashboard(run.trajectory, run.trace, run.tokenizer)\ndash",
    "big = synthetic_run('k2', seed=1)\n"
    "hm = RoutingHeatmap(big.trace, tokenizer=big.tokenizer, trajectory=big.trajectory)\n"
    "hm.title = 'Expert routing · K2 scale (61 × 384, top-8)'\nhm",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    import nbformat

    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(nb, root / "widgets.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / ".jupyter"), JUPYTER_RUNTIME_DIR=str(root / ".rt"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.DEVNULL, stderr=open(root / "lab.log", "w"), env=env,  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, token, root
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _mark(what: str, t0: list[float]) -> None:
    print(f"[{time.monotonic() - t0[0]:6.1f}s] {what}", flush=True)


def test_widgets_render_and_link_in_jupyterlab(lab):
    from playwright.sync_api import expect, sync_playwright

    url, token, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1360, "height": 1000}, device_scale_factor=1)
        errors: list[str] = []
        t0 = [time.monotonic()]
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{url}/lab/tree/widgets.ipynb?token={token}", timeout=90_000)
            page.wait_for_selector(".jp-Notebook", timeout=90_000)
            _mark("notebook open", t0)
            select = page.locator(".jp-Dialog button:has-text('Select')")
            try:
                select.first.click(timeout=8_000)
            except Exception:  # noqa: BLE001 - no kernel dialog: the notebook's kernelspec was used
                pass
            page.wait_for_function("window.jupyterapp !== undefined", timeout=30_000)
            # run-all is ignored while the kernel is still connecting: retry until cell 1 has run
            first_ran = ".jp-Cell .jp-InputArea-prompt:has-text('[1]')"
            for _ in range(6):
                page.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=90_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                try:
                    page.wait_for_selector(first_ran, timeout=20_000)
                    break
                except Exception:  # noqa: BLE001 - not run yet; try again
                    continue
            try:  # the "Jupyter news?" toast covers the bottom right of screenshots
                page.get_by_role("button", name="No", exact=True).first.click(timeout=3_000)
            except Exception:  # noqa: BLE001 - no toast in this version
                pass
            _mark("run all", t0)
            # ---- the dashboard: tree, panel, heatmap ----------------------------------------------
            page.wait_for_selector(".k2nb-dashboard .k2nb-hm[data-drawn]", timeout=120_000)
            _mark("dashboard drawn", t0)
            page.wait_for_selector(".k2nb-tree[data-nodes]", timeout=30_000)
            n_rows = page.locator(".k2nb-dashboard .k2nb-row").count()
            n_nodes = int(page.locator(".k2nb-dashboard .k2nb-tree").get_attribute("data-nodes"))
            # rolled-back attempts start collapsed, so fewer rows than nodes until expanded
            page.locator(".k2nb-dashboard .k2nb-tree-btn:has-text('expand all')").click()
            assert page.locator(".k2nb-dashboard .k2nb-row").count() == n_nodes > n_rows
            kinds = set(page.locator(".k2nb-dashboard .k2nb-row").evaluate_all(
                "els => els.map(e => e.dataset.kind)"))
            want = {"thinking", "tool_call", "observation", "verification", "answer", "attempt", "path"}
            assert want <= kinds
            assert page.locator(".k2nb-dashboard .k2nb-vp").get_attribute("data-verdict") == "passed"
            badge = page.locator(".k2nb-dashboard .k2nb-vp-verdict").inner_text()
            assert "4 of 4 checks passed" in badge and "verified" not in badge.lower()

            drawn = heatmap_pixels(page)
            assert drawn["w"] > 300 and drawn["h"] > 60 and drawn["colours"] > 20, drawn

            # ---- choosing a node highlights its tokens in the heatmap (browser-side link) ----------
            hm = page.locator(".k2nb-dashboard .k2nb-hm")
            before = hm.get_attribute("data-selection")
            # the chosen path's final answer (the other path's nodes are not in this trace)
            answer = page.locator(".k2nb-dashboard .k2nb-row[data-kind='answer']:not(.untraced)").last
            answer.click()
            page.wait_for_function(
                "() => document.querySelector('.k2nb-dashboard .k2nb-hm').dataset.selection !== "
                f"{json.dumps(before)}", timeout=10_000)
            span = hm.get_attribute("data-selection")
            n_sel = page.locator(".k2nb-dashboard .k2nb-tok.sel").count()
            a, b = map(int, span.split(","))
            assert b - a == n_sel > 0
            chans = page.locator(".k2nb-dashboard .k2nb-tok.sel").evaluate_all(
                "els => [...new Set(els.map(e => e.className.match(/ch(\\d+)/)[1]))]")
            assert chans == ["5"], chans  # CHANNELS.index("answer"): the node's own tokens
            assert "answer" in page.locator(".k2nb-dashboard .k2nb-tree-detail").inner_text()
            # a node of the other path is not in the trace: choosing it leaves the selection alone
            page.locator(".k2nb-dashboard .k2nb-row.untraced[data-kind='thinking']").first.click()
            page.wait_for_timeout(300)
            assert hm.get_attribute("data-selection") == span

            # ---- token strip: click, shift-click; hover shows the tooltip ------------------------
            toks = page.locator(".k2nb-dashboard .k2nb-tok")
            # expect() retries until the view has re-rendered (a plain read raced it once on a busy
            # 2-core machine: the shift-click had not been applied yet)
            toks.nth(80).click()
            expect(hm).to_have_attribute("data-selection", "80,81", timeout=5_000)
            toks.nth(95).click(modifiers=["Shift"])
            expect(hm).to_have_attribute("data-selection", "80,96", timeout=5_000)
            grid = page.locator(".k2nb-dashboard .k2nb-hm-grid")
            box = grid.bounding_box()
            page.mouse.move(box["x"] + 60, box["y"] + 30)
            tip = page.locator(".k2nb-dashboard .k2nb-hm-tip")
            tip.wait_for(state="visible", timeout=5_000)
            assert "expert" in tip.inner_text() and "layer" in tip.inner_text()
            page.locator(".k2nb-dashboard").screenshot(path=str(ARTIFACTS / "dashboard.png"))
            _mark("dashboard checked", t0)

            # ---- K2 scale: 61 × 384 × 8, thousands of tokens -------------------------------------
            page.wait_for_function("document.querySelectorAll('.k2nb-hm[data-drawn]').length >= 2",
                                   timeout=120_000)
            _mark("k2 heatmap drawn", t0)
            big = page.locator(".k2nb-hm").last
            big.scroll_into_view_if_needed()
            big.locator(".k2nb-hm-mode:has-text('Token load')").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.k2nb-hm')].pop().querySelector('.k2nb-hm-mode.on')"
                ".textContent === 'Token load'", timeout=30_000)
            # timings are reported, not asserted (a shared machine makes them noise)
            print(f"K2-scale redraw (aggregate + draw): {big.get_attribute('data-draw-ms')} ms")
            n_big = big.locator(".k2nb-tok").count()
            assert n_big > 2500
            box = big.locator(".k2nb-hm-grid").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
            big.locator(".k2nb-hm-tip").wait_for(state="visible", timeout=5_000)
            big.screenshot(path=str(ARTIFACTS / "heatmap_k2.png"))
            page.screenshot(path=str(ARTIFACTS / "lab.png"), full_page=False)
            assert not errors, errors
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            raise
        finally:
            browser.close()
