"""Trajectory → nbformat v4 notebook: thinking as markdown, each python call as a code cell carrying
its real outputs (stream, execute_result, error), other calls, checks and the answer as markdown.
Every cell's metadata names its node: `{"k2nb": {"node": id, "kind": kind}}`.

The notebook is meant to run top to bottom with nbclient/Jupyter: a cell whose code raised in the
run is tagged `raises-exception` (the tag nbclient and JupyterLab honour), and a cell that timed out
is exported commented out, since re-running an infinite loop would hang the reader's kernel.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import nbformat
from nbformat import v4

from k2nb.agent.verdict import summary

if TYPE_CHECKING:
    from k2nb.agent.trajectory import Node, Trajectory

_STATUS_MARK = {"passed": "✓ passed", "failed": "✗ failed", "pending": "… not established"}


def _fence(text: str, lang: str = "") -> str:
    """`text` in a code fence longer than any backtick run inside it."""
    run = longest = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.strip("\n").splitlines()) or ">"


def _meta(node: Node, **extra: Any) -> dict[str, Any]:
    return {"k2nb": {"node": node.id, "kind": node.kind, **extra}}


def _python_cell(call: Node, obs: Node | None) -> Any:
    """The code cell of a python call, or None when the call never ran as code."""
    parsed = call.data.get("parsed")
    if (
        call.data.get("name") != "python"
        or not isinstance(parsed, dict)
        or not isinstance(parsed.get("code"), str)
    ):
        return None
    result = (obs.data.get("data") or {}) if obs is not None else {}
    code = parsed["code"]
    count = result.get("execution_count")
    meta = _meta(call, observation=obs.id if obs is not None else None, call_id=call.data.get("call_id"))
    tags: list[str] = []
    if result.get("timed_out"):
        note = (
            f"# k2nb: this call ran past its time limit in the run ({result.get('evalue', '')}).\n"
            "# It is commented out so that this notebook runs top to bottom.\n"
        )
        code = note + "\n".join("# " + line for line in code.splitlines())
        meta["k2nb"]["timed_out"] = True
    elif result.get("ename"):
        tags.append("raises-exception")
    if tags:
        meta["tags"] = tags
    cell = v4.new_code_cell(source=code, metadata=meta, execution_count=count, id=_cell_id(call))
    outputs = []
    if result.get("stdout"):
        outputs.append(v4.new_output("stream", name="stdout", text=result["stdout"]))
    if result.get("stderr"):
        outputs.append(v4.new_output("stream", name="stderr", text=result["stderr"]))
    if result.get("value") is not None:
        outputs.append(
            v4.new_output("execute_result", data={"text/plain": result["value"]}, execution_count=count)
        )
    if result.get("ename"):
        outputs.append(
            v4.new_output(
                "error",
                ename=result["ename"],
                evalue=result.get("evalue") or "",
                traceback=[line.rstrip("\n") for line in result.get("traceback", [])],
            )
        )
    cell.outputs = outputs
    return cell


def _cell_id(node: Node) -> str:
    return f"k2nb-{node.id}"  # deterministic, so two exports of one run diff cleanly


def _markdown(node: Node, text: str, **extra: Any) -> Any:
    return v4.new_markdown_cell(source=text, metadata=_meta(node, **extra), id=_cell_id(node))


def _call_cells(t: Trajectory, node: Node) -> list[Any]:
    """A python call as a code cell with its outputs; any other call as markdown with its result."""
    obs = next(iter(t.children(node, "observation")), None)
    cell = _python_cell(node, obs)
    if cell is not None:
        return [cell]
    args = node.data.get("arguments", node.text)
    try:
        args = json.dumps(json.loads(args), indent=2, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # shown as the model wrote it
        pass
    src = f"**Tool call** `{node.data.get('name', '?')}` ({node.data.get('call_id', '')})\n\n" + _fence(
        str(args), "json"
    )
    cells = [_markdown(node, src)]
    if obs is not None:
        label = "Observation" if obs.data.get("ok", True) else "Observation (error)"
        cells.append(_markdown(obs, f"**{label}**\n\n" + _fence(obs.text)))
    return cells


def _checks_cell(t: Trajectory) -> Any:
    v = summary(t)
    rows = ["## Checks", "", f"**{v.headline}**" + (f" ({v.detail})" if v.detail else ""), "",
            "| check | status | evidence | node |", "|---|---|---|---|"]
    for c in t.checks:
        evidence = c.evidence.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {c.name} | {_STATUS_MARK.get(c.status, c.status)} | {evidence} | {c.node or ''} |")
    return v4.new_markdown_cell(
        source="\n".join(rows), metadata={"k2nb": {"kind": "checks"}}, id="k2nb-checks"
    )


def trajectory_to_notebook(t: Trajectory) -> Any:
    cells: list[Any] = []
    question = t.question.strip()
    cells.append(_markdown(t.root, "# k2nb run\n\n**Question.** " + (question or "(none)")))
    for node in t.walk():
        kind = node.kind
        if (
            kind == "root"
            or kind == "observation"
            and node.parent
            and t.nodes[node.parent].kind == "tool_call"
        ):
            continue  # the root is the title; an observation is rendered with its call
        if kind == "path":
            seed = node.data.get("seed")
            head = f"## Path {node.data.get('index', node.id)}" + (
                f" (seed {seed})" if seed is not None else ""
            )
            extra = [f"votes: {node.data['vote']}"] if "vote" in node.data else []
            cells.append(_markdown(node, "\n\n".join([head, *extra])))
        elif kind == "attempt":
            head = f"### Attempt {node.data.get('index', node.id)}"
            if node.data.get("reason"):
                head += f"\n\nRetried because: {node.data['reason']}"
            cells.append(_markdown(node, head))
        elif kind == "thinking":
            if node.text.strip():
                cells.append(_markdown(node, "**Thinking**\n\n" + _quote(node.text)))
        elif kind == "tool_call":
            cells += _call_cells(t, node)
        elif kind == "observation":
            cells.append(_markdown(node, "**Observation**\n\n" + _fence(node.text)))
        elif kind == "verification":
            cells.append(_markdown(node, "**Verification**\n\n" + node.text))
        elif kind == "answer":
            cells.append(_markdown(node, "## Answer\n\n" + node.text.strip()))
        elif kind == "error":
            cells.append(_markdown(node, "**Error.** " + node.text))
    if t.checks:
        cells.append(_checks_cell(t))
    answer = t.answer
    nb = v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "k2nb": {
                "question": t.question,
                "answer": answer,
                "checks": summary(t).to_dict(),
                "meta": json.loads(json.dumps(t.meta, default=repr)),
            },
        },
    )
    nbformat.validate(nb)
    return nb
