"""Writing the k2nb kernelspec, and making sure JupyterLab finds the k2nb front-end extension."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

KERNEL_NAME = "k2nb"
KERNEL_DISPLAY_NAME = "Python 3 (k2nb)"
LABEXTENSION_NAME = "k2nb"


def kernelspec_dict(python: str | None = None, *, warm: bool = True, endpoint: str | None = None,
                    served_model: str | None = None, api_key_env: str | None = None) -> dict[str, Any]:
    """kernel.json of the k2nb kernel: the stock ipykernel launcher with the extension preloaded.

    With `endpoint`, the kernel runs `%%k2think` on that served model (connected at the first run;
    the key stays in the variable `api_key_env` names: only the name is written here)."""
    env = {"K2NB_WARM": "1" if warm and endpoint is None else "0"}
    for key, value in (("K2NB_ENDPOINT", endpoint), ("K2NB_SERVED_MODEL", served_model),
                       ("K2NB_API_KEY_ENV", api_key_env)):
        if value:
            env[key] = value
    return {
        "argv": [
            python or sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.extensions=k2nb",
        ],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
        "env": env,
        "metadata": {"debugger": True, "k2nb": {"version": _version()}},
    }


def _version() -> str:
    from k2nb import __version__

    return __version__


def install_kernelspec(
    *,
    user: bool = False,
    name: str = KERNEL_NAME,
    prefix: str | None = None,
    display_name: str | None = None,
    warm: bool = True,
    endpoint: str | None = None,
    served_model: str | None = None,
    api_key_env: str | None = None,
) -> str:
    """Install the kernelspec; returns the folder it went to. Without `user`/`prefix` it goes to
    this Python's prefix (``sys.prefix``), so it belongs to the environment k2nb is installed in."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = kernelspec_dict(warm=warm, endpoint=endpoint, served_model=served_model,
                           api_key_env=api_key_env)
    if display_name:
        spec["display_name"] = display_name
    if prefix is None and not user:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
        _copy_logos(folder)
        return KernelSpecManager().install_kernel_spec(str(folder), name, user=user, prefix=prefix)


def _copy_logos(folder: Path) -> None:
    try:
        import ipykernel

        resources = Path(ipykernel.__file__).parent / "resources"
        for logo in resources.glob("logo-*.png"):
            shutil.copy(logo, folder / logo.name)
    except Exception:  # noqa: BLE001 - logos are decoration
        pass


def kernelspec_installed(name: str = KERNEL_NAME) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# the prebuilt labextension


def labextension_source() -> Path:
    """The built extension inside the package (k2nb/labextension, with package.json)."""
    return Path(__file__).resolve().parent.parent / "labextension"


def labextension_target(prefix: str | None = None) -> Path:
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "labextensions" / LABEXTENSION_NAME


def _build_id(folder: Path) -> str | None:
    try:
        pkg = json.loads((folder / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return (pkg.get("jupyterlab") or {}).get("_build", {}).get("load")


def ensure_labextension(prefix: str | None = None) -> str:
    """Make JupyterLab find this k2nb's front end; returns what was done.

    A wheel install puts the extension in ``<prefix>/share/jupyter/labextensions/k2nb`` (hatchling
    shared-data), and so does ``pip install -e .`` — but as a copy made at install time, which goes
    stale when the extension is rebuilt. So: nothing if the installed copy is the package's build,
    else a symlink to the package's folder (a copy where links are not allowed)."""
    src = labextension_source()
    if _build_id(src) is None:
        return "no built extension in the package (run labextension/build.sh)"
    dst = labextension_target(prefix)
    if dst.resolve() == src or _build_id(dst) == _build_id(src):
        return f"up to date: {dst}"
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src, dst, target_is_directory=True)
        return f"linked {dst} -> {src}"
    except OSError:
        shutil.copytree(src, dst)
        return f"copied {src} to {dst}"
