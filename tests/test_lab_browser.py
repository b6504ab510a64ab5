"""Real browser: JupyterLab + the k2nb extension insert a run's tool calls as real cells.

A cell calls `run_tool_calls` (the same NotebookExecutor + cell channel path a `%%k2think` run uses,
without a model), and the test watches the notebook in headless Chromium: the cells appear below the
running cell one by one while it runs, in order, with their outputs (a stream, rich HTML, a traceback,
a stream that grows while the cell runs), are saved in the .ipynb, and a re-run replaces them.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import time

import pytest
from lab_harness import (
    browser_page,
    cells,
    chromium_missing_reason,
    heatmap_pixels,
    lab_server,
    open_notebook,
    run_all,
    screenshot,
    wait_idle,
)

reason = chromium_missing_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")

TOOL_CODES = [
    # the first call lasts a second, so a watcher sees it alone before the next ones come
    "import math, time\nrows = [(n, math.factorial(n)) for n in range(1, 6)]\nprint(rows)\ntime.sleep(1.0)",
    "from IPython.display import HTML\nHTML('<b id=\"k2nb-rich\">rich output from a tool cell</b>')",
    "1 / 0",
    "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"
    "sum(n for n, _ in rows)",
]

RUN_CELL = (
    f"from k2nb.magics import run_tool_calls\nobs = run_tool_calls({TOOL_CODES!r})\n[o.ok for o in obs]"
)


@pytest.fixture(scope="module")
def server():
    with lab_server() as s:
        yield s


def k2nb_cells(nb: list[dict]) -> list[dict]:
    return [c for c in nb if "k2nb" in (c["metadata"] or {})]


def test_tool_calls_become_real_cells(server):
    server.write_notebook(
        "cells.ipynb",
        [
            ("markdown", "# k2nb: tool calls as real cells"),
            ("code", "%load_ext k2nb"),
            ("code", RUN_CELL),
            ("code", "print('the cell after the run')"),
        ],
    )
    with browser_page() as page:
        open_notebook(page, server, "cells.ipynb")
        assert page.evaluate("() => window.k2nb && window.k2nb.version") == "0.1.0"
        anchor_id = cells(page)[2]["id"]
        run_all(page)

        # Watch the run: cells must appear while it goes on, and the last one's output must grow.
        seen_counts: list[int] = []
        tick_snapshots: set[str] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            nb = cells(page)
            tools = k2nb_cells(nb)
            if not seen_counts or seen_counts[-1] != len(tools):
                seen_counts.append(len(tools))
            if len(tools) == 4:
                text = "".join(o.get("text", "") for o in tools[3]["outputs"] if o["output_type"] == "stream")
                tick_snapshots.add(text)
                if any(o["output_type"] == "execute_result" for o in tools[3]["outputs"]):
                    break
            time.sleep(0.1)
        wait_idle(page)
        time.sleep(0.5)
        shot = screenshot(page, "lab_tool_cells.png")
        nb = cells(page)

        # in order, right below the running cell, before the next cell
        sources = [c["source"] for c in nb]
        assert sources[2] == RUN_CELL
        assert sources[3:7] == TOOL_CODES, sources
        assert sources[7] == "print('the cell after the run')"
        # inserted one by one while the run went on (not all at the end)
        assert seen_counts[:1] == [0] and 4 in seen_counts and len(set(seen_counts)) >= 3, seen_counts
        # the slow cell's stdout was visible before it finished
        assert any("tick 0" in t and "tick 3" not in t for t in tick_snapshots), tick_snapshots

        tools = nb[3:7]
        counts = [c["execution_count"] for c in tools]
        assert all(isinstance(n, int) for n in counts) and counts == sorted(counts) and len(set(counts)) == 4
        assert nb[2]["execution_count"] > counts[-1]  # the run's own cell ends after its tools
        for c in tools:
            meta = c["metadata"]["k2nb"]
            assert meta["anchor"] == anchor_id and meta["tool"] == "python"
            assert c["tagged"], "the extension marks inserted cells"
        assert tools[0]["outputs"][0]["text"].startswith("[(1, 1), (2, 2), (3, 6)")
        assert tools[1]["outputs"][0]["output_type"] == "execute_result"
        assert "rich output" in tools[1]["outputs"][0]["data"]["text/html"]
        err = tools[2]["outputs"][0]
        assert err["output_type"] == "error" and err["ename"] == "ZeroDivisionError"
        assert tools[2]["metadata"]["k2nb"]["ok"] is False
        assert tools[3]["outputs"][-1]["data"]["text/plain"] == "15"  # `rows` from call 1: same namespace
        # the run cell shows what the model read back; the run went on past the error
        run_out = nb[2]["outputs"]
        assert run_out and run_out[-1]["data"]["text/plain"] == "[True, True, False, True]"
        assert "the cell after the run" in nb[7]["outputs"][0]["text"]

        # rendered in the page: rich HTML, the traceback, the marker class
        assert page.locator("#k2nb-rich").is_visible()
        assert page.locator(".jp-Cell.k2nb-tool-cell").count() == 4
        assert (
            page.locator(
                ".k2nb-tool-cell .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            ).count()
            >= 1
        )
        assert shot.exists()

        # saved like any cell
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
        import nbformat

        saved = nbformat.read(server.root / "cells.ipynb", as_version=4)
        saved_tools = [c for c in saved.cells if "k2nb" in c.metadata]
        assert [c.source for c in saved_tools] == TOOL_CODES
        assert saved_tools[2].outputs[0].output_type == "error"

        # re-running the cell replaces its tool cells instead of stacking a second set
        page.evaluate("""() => { const p = window.jupyterapp.shell.currentWidget;
                                 p.content.activeCellIndex = 2;
                                 window.jupyterapp.commands.execute('notebook:run-cell'); }""")
        wait_idle(page)
        page.wait_for_function("""() => { const m = window.jupyterapp.shell.currentWidget.content.model;
            for (let i = 0; i < m.cells.length; i++) { const c = m.cells.get(i);
              if (c.getMetadata('k2nb') && c.toJSON().execution_count === null) return false; }
            return true; }""")
        nb2 = cells(page)
        again = k2nb_cells(nb2)
        assert [c["source"] for c in again] == TOOL_CODES
        assert min(c["execution_count"] for c in again) > max(counts)
        screenshot(page, "lab_tool_cells_rerun.png")


SETUP = """%load_ext k2nb
from k2nb.magics import state
from k2nb.backends.scripted import ScriptedBackend, Turn
prices = [12.5, 40.0, 27.5]
state().use_backend(ScriptedBackend([
    Turn(think="I will look at the data first.", calls=[("python", {"code": "len(prices), sum(prices)"})]),
    Turn(think="Now the mean.",
         calls=[("python", {"code": "mean = sum(prices) / len(prices)\\nprint(mean)"})]),
    Turn(think="The tool printed 26.666666666666668.", answer="The mean price is **26.67**."),
]))"""


def test_k2think_cell_in_the_browser(server):
    """A whole %%k2think run (scripted model): tool cells below it, the answer, the dashboard."""
    server.write_notebook(
        "think.ipynb",
        [("code", SETUP), ("code", "%%k2think\nWhat is the mean of {prices}?"), ("code", "_.answer")],
    )
    with browser_page() as page:
        open_notebook(page, server, "think.ipynb")
        run_all(page)
        wait_idle(page)
        # Run All idles between cells: wait for the last cell's output, then let the widgets draw
        page.wait_for_function(
            """() => { const m = window.jupyterapp.shell.currentWidget.content.model;
                       const last = m.cells.get(m.cells.length - 1).toJSON();
                       return m.cells.length >= 5 && last.outputs.length > 0; }""",
            timeout=180_000,
        )
        time.sleep(1.0)
        screenshot(page, "lab_k2think.png")
        nb = cells(page)
        assert [c["source"] for c in nb[2:4]] == [
            "len(prices), sum(prices)",
            "mean = sum(prices) / len(prices)\nprint(mean)",
        ]
        assert nb[2]["outputs"][0]["data"]["text/plain"] == "(3, 80.0)"
        assert nb[3]["outputs"][0]["text"].startswith("26.66")
        assert all(c["tagged"] for c in nb[2:4])
        assert nb[4]["source"] == "_.answer" and "26.67" in nb[4]["outputs"][0]["data"]["text/plain"]
        run_out = nb[1]["outputs"]
        kinds = [next(iter(o.get("data", {})), o["output_type"]) for o in run_out]
        assert any("26.67" in (o.get("data", {}).get("text/markdown") or "") for o in run_out), kinds
        assert page.locator(".k2nb-progress").first.inner_text().startswith("k2nb · done")
        assert page.locator("details.k2nb-thinking").count() >= 2
        assert page.locator(".k2nb-dashboard").count() == 1, "the dashboard is shown at the end of the run"


def test_k2think_with_k2_nano_in_the_browser(server):
    """The real thing: the shipped k2-nano in the kernel, its python calls inserted as real cells with
    outputs, the heatmap drawn, the tree holding the run's nodes, the panel showing the verdict."""
    server.write_notebook(
        "nano.ipynb",
        [("code", "%load_ext k2nb"),
         ("code", "%%k2think\nGoing from 803 to 682, what is the change in percent?"),
         ("code", "_.answer")],
    )
    with browser_page() as page:
        open_notebook(page, server, "nano.ipynb")
        run_all(page)
        wait_idle(page)
        page.wait_for_function(
            """() => { const m = window.jupyterapp.shell.currentWidget.content.model;
                       const last = m.cells.get(m.cells.length - 1).toJSON();
                       return m.cells.length >= 4 && last.outputs.length > 0; }""",
            timeout=300_000,
        )
        time.sleep(1.5)
        screenshot(page, "lab_k2think_nano.png")
        nb = cells(page)
        tools = [c for c in nb if c["tagged"]]
        assert len(tools) >= 2, [c["source"] for c in nb]
        assert all(c["outputs"] for c in tools)
        assert "-15.07" in json.dumps(tools[0]["outputs"])
        assert "-15.07" in nb[-1]["outputs"][0]["data"]["text/plain"]
        n_nodes = int(page.locator(".k2nb-dashboard .k2nb-tree").get_attribute("data-nodes"))
        assert n_nodes >= 6  # root, path, attempt, thinking, tool calls, observations, answer
        assert page.locator(".k2nb-dashboard .k2nb-vp").get_attribute("data-verdict") == "passed"
        drawn = heatmap_pixels(page)
        assert drawn["w"] > 100 and drawn["h"] > 30 and drawn["colours"] > 5, drawn
