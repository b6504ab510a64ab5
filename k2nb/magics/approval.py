"""`--approve auto|ask|never`: whether a tool call runs.

`auto` runs every call; `never` offers the model no tools at all (decided by the executor); `ask`
shows each call's code with Run / Skip / Run all buttons in the running cell and waits for a click.
The buttons work although the cell is busy because the wait processes the kernel's UI events
(jupyter-ui-poll). Outside a kernel (terminal IPython) `ask` reads y / n / a from stdin.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, Literal

from k2nb.magics import uipoll

ApprovalMode = Literal["auto", "ask", "never"]
Decision = Literal["run", "skip"]
APPROVAL_MODES: tuple[str, ...] = ("auto", "ask", "never")


class Approval:
    """Decides, call by call, whether to run. `decide_fn` replaces the UI (tests, other front ends)."""

    def __init__(
        self,
        mode: ApprovalMode = "auto",
        shell: Any = None,
        decide_fn: Callable[[str, str], Decision | Literal["all"]] | None = None,
    ):
        if mode not in APPROVAL_MODES:
            raise ValueError(f"approval mode {mode!r} is not one of {', '.join(APPROVAL_MODES)}")
        self.mode: ApprovalMode = mode
        self.shell = shell
        self.decide_fn = decide_fn

    @property
    def tools_enabled(self) -> bool:
        return self.mode != "never"

    def decide(self, name: str, code: str) -> Decision:
        if self.mode == "auto":
            return "run"
        if self.mode == "never":
            return "skip"
        if self.decide_fn is not None:
            choice = self.decide_fn(name, code)
        elif uipoll.available(self.shell) and _widgets_available():
            choice = _ask_with_buttons(self.shell, name, code)
        else:
            choice = _ask_on_stdin(name, code)
        if choice == "all":
            self.mode = "auto"  # Run all: this call and every later one of the run
            return "run"
        return choice


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _ask_with_buttons(shell: Any, name: str, code: str) -> Decision | Literal["all"]:
    import ipywidgets as w
    from IPython.display import display

    chosen: list[str] = []
    header = w.HTML(
        f"<b>k2nb</b>: the model wants to run <code>{html.escape(name)}</code>:"
        f"<pre style='border-left:3px solid #7c4dff;padding-left:6px;margin:4px 0'>{html.escape(code)}</pre>"
    )
    run = w.Button(description="Run", button_style="success", tooltip="run this call")
    skip = w.Button(description="Skip", button_style="warning", tooltip="do not run; the model is told")
    run_all = w.Button(description="Run all", tooltip="run this and every later call of this run")
    status = w.HTML("")
    for button, value in ((run, "run"), (skip, "skip"), (run_all, "all")):
        button.on_click(lambda _b, v=value: chosen.append(v))
    box = w.VBox([header, w.HBox([run, skip, run_all]), status])
    box.add_class("k2nb-approval")
    display(box)
    choice = uipoll.poll_until(shell, lambda: chosen[0] if chosen else None)
    if choice is None:  # no UI events can arrive (should not happen in a kernel): do not run unasked
        choice = "skip"
    for button in (run, skip, run_all):
        button.disabled = True
    status.value = {"run": "ran", "skip": "skipped", "all": "ran (and every later call)"}[choice]
    return choice  # type: ignore[return-value]


def _ask_on_stdin(name: str, code: str) -> Decision | Literal["all"]:
    print(f"k2nb: the model wants to run {name}:\n{code}")
    try:
        answer = input("run it? [y]es / [n]o / [a]ll: ").strip().lower()
    except (EOFError, OSError, NotImplementedError, RuntimeError):  # no stdin (nbclient): do not run
        return "skip"
    if answer in ("a", "all"):
        return "all"
    return "run" if answer in ("y", "yes", "") else "skip"
