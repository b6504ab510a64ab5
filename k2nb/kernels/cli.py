"""`k2nb kernel install` and `k2nb lab` (registered in k2nb/cli.py's `_EXTRA_COMMANDS`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from k2nb.kernels.install import (
    KERNEL_DISPLAY_NAME,
    KERNEL_NAME,
    ensure_labextension,
    install_kernelspec,
    kernelspec_installed,
)

QUICKSTART = "01_quickstart.ipynb"


def cmd_kernel_install(args: argparse.Namespace) -> int:
    where = install_kernelspec(
        user=args.user,
        name=args.name,
        prefix=args.prefix,
        display_name=args.display_name,
        warm=not args.no_warm,
        endpoint=args.endpoint,
        served_model=args.served_model,
        api_key_env=args.api_key_env,
    )
    print(f"installed kernelspec '{args.name}' ({args.display_name or KERNEL_DISPLAY_NAME}) in {where}")
    print(f"labextension: {ensure_labextension(args.prefix)}")
    return 0


def examples_source() -> Path | None:
    """Where this install keeps the example notebooks: the repository's examples/ (editable
    install), k2nb/examples, or <prefix>/share/k2nb/examples (a wheel that ships them)."""
    here = Path(__file__).resolve().parent.parent
    shared = Path(sys.prefix) / "share" / "k2nb" / "examples"
    for folder in (here.parent / "examples", here / "examples", shared):
        if folder.is_dir() and any(folder.glob("*.ipynb")):
            return folder
    return None


def copy_examples(dest: Path) -> list[Path]:
    """Copy the example notebooks into `dest`; files already there are kept (they may be edited)."""
    dest.mkdir(parents=True, exist_ok=True)
    src = examples_source()
    copied = []
    if src is None:
        return copied
    for nb in sorted(src.glob("*.ipynb")):
        target = dest / nb.name
        if not target.exists():
            shutil.copy(nb, target)
            copied.append(target)
    return copied


def lab_command(folder: Path, *, port: int | None, browser: bool) -> list[str]:
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}"]
    if port is not None:
        cmd.append(f"--port={port}")
    if not browser:
        cmd.append("--no-browser")
    if (folder / QUICKSTART).exists():
        cmd.append(QUICKSTART)  # opened in the browser, relative to root_dir
    return cmd


def cmd_lab(args: argparse.Namespace) -> int:
    if not kernelspec_installed(KERNEL_NAME):
        try:
            where = install_kernelspec()
        except PermissionError:  # a read-only environment: the user's own kernel folder
            where = install_kernelspec(user=True)
        print(f"k2nb: installed the '{KERNEL_DISPLAY_NAME}' kernel in {where}")
    print(f"k2nb: labextension {ensure_labextension()}")
    folder = Path(args.dir).expanduser().resolve()
    copied = copy_examples(folder)
    if copied:
        print(f"k2nb: copied {len(copied)} example notebook(s) to {folder}")
    elif examples_source() is None:
        print("k2nb: this install has no example notebooks; opening an empty folder")
    cmd = lab_command(folder, port=args.port, browser=not args.no_browser)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # JupyterLab takes over this process (Ctrl-C stops it as usual)
    return 0  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernel", help="manage the 'Python 3 (k2nb)' Jupyter kernel")
    ksub = p.add_subparsers(dest="kernel_command", required=True)
    ki = ksub.add_parser("install", help="install the kernelspec (IPython with k2nb loaded, model warmed)")
    ki.add_argument("--user", action="store_true", help="install for this user (~/.local/share/jupyter)")
    ki.add_argument("--name", default=KERNEL_NAME, help=f"kernelspec name (default {KERNEL_NAME})")
    ki.add_argument("--prefix", default=None, help="install under this prefix (e.g. a virtualenv)")
    ki.add_argument(
        "--display-name", default=None, help=f"shown in the launcher (default {KERNEL_DISPLAY_NAME!r})"
    )
    ki.add_argument("--no-warm", action="store_true", help="do not load the default model at kernel start")
    ki.add_argument("--endpoint", default=None,
                    help="run %%%%k2think on this served model (an OpenAI-compatible server's URL)")
    ki.add_argument("--served-model", default=None, help="the model's name on that server")
    ki.add_argument("--api-key-env", default=None,
                    help="the environment variable holding its API key (the name is stored, not the key)")
    ki.set_defaults(func=cmd_kernel_install)

    p = sub.add_parser("lab", help="open JupyterLab on the k2nb quickstart (installs the kernel if missing)")
    p.add_argument(
        "--dir", default="k2nb-notebooks", help="working folder for the examples (default ./k2nb-notebooks)"
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--port", type=int, default=None, help="server port (default: JupyterLab's)")
    p.add_argument(
        "--dry-run", action="store_true", help="prepare the folder, print the command, do not start"
    )
    p.set_defaults(func=cmd_lab)


def main(argv: list[str] | None = None) -> int:
    """`python -m k2nb.kernels install [...]`."""
    ap = argparse.ArgumentParser(prog="python -m k2nb.kernels")
    sub = ap.add_subparsers(dest="command", required=True)
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "install":  # `python -m k2nb.kernels install` = `k2nb kernel install`
        argv = ["kernel", *argv]
    args = ap.parse_args(argv)
    return int(args.func(args) or 0)
