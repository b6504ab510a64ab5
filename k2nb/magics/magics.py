"""The magics: `%%k2think`, `%k2model`, `%k2nb`, `%k2route`.

`K2State` is the per-kernel state behind them: the model (or an explicit backend), the conversation
that `%%k2think` cells continue until `--new`, the settings and the results. The loop itself is the
agent's (`Conversation.ask`); this module only wires it to the notebook: a `NotebookExecutor` whose
python calls become cells, a `LiveView` observer, the stop button, the result object.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from k2nb.magics.parsers import SETTING_TYPES, _Parser, interpolate, parse_line, think_parser

if TYPE_CHECKING:
    from k2nb.magics.result import K2Result

# The agent, engine and torch are imported when a magic first runs, not at `%load_ext k2nb`: the
# k2nb kernel loads the extension at start and must be ready for the first cell at once.

# The notebook's own settings. Those of a run (paths, budgets, temperature, seed) are ThinkOptions'
# fields: None here means "ThinkOptions' default", so each keeps its one default there.
DEFAULT_SETTINGS: dict[str, Any] = {
    "approve": "auto",  # local engine: calls run in the user's own kernel, like their own cells
    "cells": True,
    "dashboard": True,
    "timeout": 30.0,  # seconds per tool call
    "throttle": 0.25,  # seconds between live-view updates
    "paths": None,
    "max_tool_calls": None,
    "max_think_tokens": None,
    "temperature": None,
    "seed": None,
    "failed_checks": None,
}

HELP = """k2nb magics
  %%k2think [options]     the cell is the prompt ({var} filled from your variables); the model thinks,
                          runs python calls as cells below, checks itself and answers. Options:
      --model PATH  --paths N  --max-tool-calls N  --max-think-tokens N  --temperature T  --seed S
      --failed-checks withhold|answer (an answer whose checks failed: withheld by default)
      --approve auto|ask|never  --timeout SECONDS  --new (new conversation)  --no-cells
      --no-dashboard  --export FILE.ipynb
    Returns a K2Result (answer, trajectory, routing, .to_notebook(), .show()), so `_` is the run.
  %k2model [load PATH [--device D] [--dtype T] | unload]    show / load / unload the model
  %k2model connect URL [--model NAME] [--api-key-env VAR] [--no-probe] | disconnect   a served model
  %k2route [N] [--static]  the routing dashboard of the last (or Nth) run
  %k2nb [help | settings | set KEY VALUE | reset]"""


def _think_options(base: Any, args: argparse.Namespace, settings: dict[str, Any], cancel: Any) -> Any:
    """The run's ThinkOptions: the cell's flags over the kernel's settings over ThinkOptions' defaults."""
    from k2nb.agent.options import with_overrides

    def pick(flag: Any, key: str) -> Any:
        return flag if flag is not None else settings[key]

    chosen = {
        "paths": pick(args.paths, "paths"),
        "seed": pick(args.seed, "seed"),
        "temperature": pick(args.temperature, "temperature"),
        "tool_calls": pick(args.max_tool_calls, "max_tool_calls"),
        "think_tokens": pick(args.max_think_tokens, "max_think_tokens"),
        "failed_checks": pick(args.failed_checks, "failed_checks"),
    }
    try:
        return with_overrides(base, {"cancel": cancel, **{k: v for k, v in chosen.items() if v is not None}})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"%%k2think: {exc}") from None


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not on/off")


class K2State:
    """The model, conversation, settings and results of one kernel."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.settings: dict[str, Any] = dict(DEFAULT_SETTINGS)
        self.model: Any = None
        self.model_path: str | None = None
        self.load_seconds: float | None = None
        self.backend: Any = None  # set by use_backend() (a test double, later a remote server)
        self.conversation: Any = None
        self.results: list[K2Result] = []  # noqa: F821 - imported lazily

    # -- model ------------------------------------------------------------------------------------

    def use_backend(self, backend: Any, name: str = "custom backend") -> None:
        """Run `%%k2think` on `backend` (an agent `Backend`) instead of a local model."""
        self.backend = backend
        self.model_path = name
        self.conversation = None

    def load(self, path: str, device: str | None = None, dtype: str | None = None) -> Any:
        from k2nb.engine import load_model

        torch_dtype = None
        if dtype is not None:
            import torch

            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise UsageError(f"%k2model: unknown dtype {dtype!r}; use float32, bfloat16 or float16")
        from k2nb.models import resolve_model_arg

        t0 = time.monotonic()
        model = load_model(resolve_model_arg(path), device=device, dtype=torch_dtype)  # type: ignore[arg-type]
        self.model, self.model_path, self.backend = model, str(path), None
        self.load_seconds = time.monotonic() - t0
        self.conversation = None  # a conversation belongs to the model it was held with
        return model

    def connect(self, url: str, model: str | None, api_key_env: str | None, probe: bool = True) -> None:
        """Run `%%k2think` on a served model (an OpenAI-compatible server) from now on; `probe` asks it
        once what it supports (one 16-token request)."""
        from k2nb.backends.openai import connect
        from k2nb.engine.errors import K2nbError

        try:
            backend = connect(url, model, api_key_env, probe=probe)
        except K2nbError as exc:
            raise UsageError(f"%k2model connect: {exc}") from None
        self.use_backend(backend, f"{backend.model} at {backend.base_url}")

    def unload(self) -> None:
        self.model = self.backend = self.conversation = None
        self.model_path = None

    def ensure_model(self) -> None:
        """Have a model or backend: the served model the kernel was installed for (K2NB_ENDPOINT),
        the one warmed at kernel start, else the embedded default."""
        if self.model is not None or self.backend is not None:
            return
        endpoint = os.environ.get("K2NB_ENDPOINT")
        if endpoint:
            self.connect(endpoint, os.environ.get("K2NB_SERVED_MODEL") or None,
                         os.environ.get("K2NB_API_KEY_ENV") or None, probe=False)
            return
        from k2nb.kernels import warm

        if warm._thread is not None:
            path, model = warm.take()
            if model is not None:
                self.model, self.model_path = model, path
                self.load_seconds = warm._state.get("seconds")
                return
        path = warm.default_model_path()
        if path is None:
            raise UsageError(
                "%%k2think: no model is loaded and this install ships no default model yet; use "
                "--model PATH or %k2model load PATH with a checkpoint folder"
            )
        self.load(path)

    def make_backend(self) -> Any:
        self.ensure_model()
        if self.backend is not None:
            return self.backend
        from k2nb.backends.engine import EngineBackend

        return EngineBackend(self.model)

    def model_info(self) -> str:
        if self.backend is not None:
            describe = getattr(self.backend, "describe", None)
            if describe is not None:
                return "served model: " + "\n  ".join(describe())
            return f"backend: {self.model_path} ({type(self.backend).__name__})"
        if self.model is None and os.environ.get("K2NB_ENDPOINT"):
            return (f"this kernel runs on the served model at {os.environ['K2NB_ENDPOINT']}; it connects "
                    "at the first %%k2think (or now: %k2model connect URL)")
        if self.model is None:
            from k2nb.kernels import warm

            if warm.warming():
                return f"no model yet; warming {warm._state['path']} in the background"
            default = warm.default_model_path()
            if default is not None:
                return (
                    f"no model loaded yet; the first %%k2think loads the default ({default}); "
                    "%k2model load PATH (or --model PATH) picks another"
                )
            return "no model loaded (%k2model load PATH, or --model PATH on %%k2think)"
        m = self.model
        params = list(m.parameters())
        n = sum(p.numel() for p in params)
        nbytes = sum(p.numel() * p.element_size() for p in params)
        device = params[0].device if params else "?"
        dtype = params[0].dtype if params else "?"
        cfg = getattr(m, "config", None)
        arch = ""
        if cfg is not None:
            arch = (
                f"\n  {cfg.model_type}: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
                f"{cfg.n_routed_experts} experts top-{cfg.num_experts_per_tok} "
                f"+ {cfg.n_shared_experts} shared"
            )
        loaded = f", loaded in {self.load_seconds:.1f} s" if self.load_seconds else ""
        return (
            f"model: {self.model_path}{arch}\n  {n / 1e6:.2f} M parameters, {nbytes / 2**20:.1f} MiB, "
            f"{device}, {str(dtype).replace('torch.', '')}{loaded}"
        )

    # -- conversation -----------------------------------------------------------------------------

    def conversation_for(self, new: bool) -> Any:
        from k2nb.agent import Conversation

        backend = self.make_backend()
        if new or self.conversation is None:
            self.conversation = Conversation(backend)
        return self.conversation


@magics_class
class K2Magics(Magics):
    def __init__(self, shell: Any):
        super().__init__(shell)
        self.state = K2State(shell)

    # -- %%k2think --------------------------------------------------------------------------------

    @cell_magic
    def k2think(self, line: str, cell: str) -> K2Result | None:
        """Think about the cell's prompt with the model; see `%k2nb help`."""
        from k2nb.magics.live import LiveView
        from k2nb.magics.result import K2Result
        from k2nb.magics.session import notebook_executor

        args = parse_line(think_parser(), line)
        prompt = interpolate(cell, self.shell.user_ns).strip()
        if not prompt:
            raise UsageError("%%k2think: the cell has no prompt; write the question below the magic line")
        from k2nb.agent.turn import check_prompt

        try:
            check_prompt(prompt)
        except ValueError as exc:
            raise UsageError(f"%%k2think: {exc}") from None
        st = self.state
        s = st.settings
        if args.model:
            st.load(args.model)
        if args.endpoint:
            st.connect(args.endpoint, args.served_model, args.api_key_env)
        conv = st.conversation_for(args.new)
        cancel = threading.Event()
        approve = args.approve or s["approve"]
        executor = notebook_executor(
            self.shell,
            approve=approve,
            cells=s["cells"] and not args.no_cells,
            cancel=cancel,
            timeout_s=args.timeout if args.timeout is not None else s["timeout"],
        )
        mode = getattr(executor.sink, "mode", "none")
        live = LiveView(interval_s=s["throttle"], cell_mode=mode)
        conv.executor = executor
        conv.observers = [live]
        options = _think_options(conv.options, args, s, cancel)
        think = None
        end_reason = None
        error: BaseException | None = None
        try:
            think = conv.ask(prompt, options)
        except KeyboardInterrupt:
            # Stopped outside a generation (the engine turns a stop during one into "cancelled"):
            # the conversation keeps its earlier turns, the partial trajectory is kept below.
            cancel.set()
            end_reason = "cancelled"
        except Exception as exc:  # noqa: BLE001 - shown after the partial result is kept
            error, end_reason = exc, "error"
        finally:
            executor.close()
        trajectory = think.trajectory if think is not None else live.trajectory
        if trajectory is None:
            from k2nb.agent.trajectory import Trajectory

            trajectory = Trajectory(prompt)
        result = K2Result(
            trajectory,
            think,
            end_reason=end_reason,
            cells=executor.cells,
            model=st.model,
            tokenizer=getattr(st.model, "tokenizer", None),
            cell_mode=mode,
            elapsed_s=live.elapsed_s,
            n_tokens=live.n_tokens,
        )
        live.finish(result.end_reason, str(error) if error is not None else result.error)
        st.results.append(result)
        self.shell.user_ns["k2_last"] = result  # also reachable when the cell's value is not shown
        if args.export:
            path = result.export(args.export)
            print(f"k2nb: exported the run to {path}")
        if error is not None:
            raise error
        if result.end_reason == "cancelled":
            print("k2nb: stopped; the partial run is in `_` (or k2_last)")
        if s["dashboard"] and not args.no_dashboard:
            self._show_dashboard(result)
        return result

    def _show_dashboard(self, result: K2Result) -> None:  # noqa: F821
        try:
            import ipywidgets  # noqa: F401

            from k2nb.widgets import Dashboard  # noqa: F401
        except ImportError:
            return
        try:
            result.show()
        except Exception as exc:  # noqa: BLE001 - a view failing must not lose the run
            print(f"k2nb: the dashboard could not be drawn ({type(exc).__name__}: {exc}); the run is in `_`")

    # -- %k2model ---------------------------------------------------------------------------------

    @line_magic
    def k2model(self, line: str) -> None:
        """%k2model [load PATH [--device D] [--dtype T] | unload | connect URL [--model NAME]
        [--api-key-env VAR] [--no-probe] | disconnect]"""
        p = _Parser(prog="%k2model", add_help=False)
        actions = ("show", "load", "unload", "connect", "disconnect")
        p.add_argument("action", nargs="?", choices=actions, default="show")
        p.add_argument("path", nargs="?")
        p.add_argument("--device")
        p.add_argument("--dtype")
        p.add_argument("--model", dest="served_model")
        p.add_argument("--api-key-env")
        p.add_argument("--no-probe", action="store_true")
        args = parse_line(p, line)
        st = self.state
        if args.action == "connect":
            if not args.path:
                raise UsageError("%k2model connect: give the server's URL, e.g. http://127.0.0.1:8000")
            st.connect(args.path, args.served_model, args.api_key_env, probe=not args.no_probe)
        elif args.action == "disconnect":
            st.unload()
            print("k2nb: disconnected")
            return
        elif args.action == "load":
            if not args.path:
                raise UsageError("%k2model load: give a checkpoint folder, e.g. %k2model load ./k2-nano")
            st.load(args.path, device=args.device, dtype=args.dtype)
        elif args.action == "unload":
            st.unload()
            print("k2nb: model unloaded")
            return
        print(st.model_info())

    # -- %k2nb ------------------------------------------------------------------------------------

    @line_magic
    def k2nb(self, line: str) -> None:
        """%k2nb [help | settings | set KEY VALUE | reset]"""
        words = line.split()
        st = self.state
        if not words or words[0] == "help":
            print(HELP)
        elif words[0] == "settings":
            width = max(len(k) for k in st.settings)
            print("\n".join(f"{k:<{width}}  {v}" for k, v in st.settings.items()))
            print(st.model_info())
        elif words[0] == "set":
            if len(words) != 3 or words[1] not in st.settings:
                raise UsageError(f"%k2nb set KEY VALUE, KEY one of: {', '.join(st.settings)}")
            key, text = words[1], words[2]
            try:
                value: Any = (
                    None
                    if text.lower() == "none"
                    else (_bool(text) if SETTING_TYPES[key] is bool else SETTING_TYPES[key](text))
                )
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise UsageError(f"%k2nb set {key}: {exc}") from None
            if key == "approve" and value not in ("auto", "ask", "never"):
                raise UsageError("%k2nb set approve: one of auto, ask, never")
            st.settings[key] = value
        elif words[0] == "reset":
            st.settings = dict(DEFAULT_SETTINGS)
            st.conversation = None
        else:
            raise UsageError(f"%k2nb: unknown command {words[0]!r}; try %k2nb help")

    # -- %k2route ---------------------------------------------------------------------------------

    @line_magic
    def k2route(self, line: str) -> Any:
        """%k2route [N] [--static]: the routing dashboard of the last (or Nth, from 1) run."""
        p = _Parser(prog="%k2route", add_help=False)
        p.add_argument("n", nargs="?", type=int)
        p.add_argument("--static", action="store_true", help="matplotlib figures instead of widgets")
        args: argparse.Namespace = parse_line(p, line)
        results = self.state.results
        if not results:
            raise UsageError("%k2route: no %%k2think run yet")
        if args.n is not None and not 1 <= args.n <= len(results):
            raise UsageError(f"%k2route: run {args.n} does not exist (1..{len(results)})")
        result = results[(args.n or len(results)) - 1]
        if args.static:
            from k2nb.widgets import plot

            trace = result.full_routing()
            if trace is None:
                print("k2nb: this run has no routing (no tokens, or a backend that reports none)")
                return None
            return plot.expert_load(trace, title="expert load of the run")
        result.show()
        return None


_MAGICS: dict[int, K2Magics] = {}


def register_magics(shell: Any) -> K2Magics:
    magics = _MAGICS.get(id(shell))
    if magics is None or magics.shell is not shell:
        magics = K2Magics(shell)
        _MAGICS[id(shell)] = magics
    shell.register_magics(magics)
    return magics


def state(shell: Any = None) -> K2State:
    """The k2nb state of `shell` (default: the running IPython), e.g. `state().use_backend(b)`."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise RuntimeError("k2nb.magics.state() needs a running IPython")
    return register_magics(shell).state if id(shell) not in _MAGICS else _MAGICS[id(shell)].state
