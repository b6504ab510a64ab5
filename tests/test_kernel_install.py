"""`k2nb kernel install`, `k2nb lab`, the labextension link and the background model warm-up."""

from __future__ import annotations

import json
import threading
import time

import pytest

from k2nb.cli import main as k2nb_main
from k2nb.kernels import warm
from k2nb.kernels.cli import lab_command
from k2nb.kernels.install import ensure_labextension, labextension_source


def test_kernel_install_writes_the_kernelspec(tmp_path, capsys):
    assert k2nb_main(["kernel", "install", "--prefix", str(tmp_path), "--name", "k2nb-test"]) == 0
    spec = json.loads((tmp_path / "share/jupyter/kernels/k2nb-test/kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (k2nb)"
    assert "--IPKernelApp.extensions=k2nb" in spec["argv"] and "{connection_file}" in spec["argv"]
    assert spec["env"]["K2NB_WARM"] == "1"
    # the extension is made findable next to it (a link to this package's build)
    ext = tmp_path / "share/jupyter/labextensions/k2nb"
    assert (ext / "package.json").exists() and ext.resolve() == labextension_source()
    assert "up to date" in ensure_labextension(str(tmp_path))
    assert "installed kernelspec 'k2nb-test'" in capsys.readouterr().out


def test_python_m_kernels_install(tmp_path):
    from k2nb.kernels.cli import main

    assert main(["install", "--prefix", str(tmp_path), "--no-warm"]) == 0
    spec = json.loads((tmp_path / "share/jupyter/kernels/k2nb/kernel.json").read_text())
    assert spec["env"]["K2NB_WARM"] == "0"


def test_built_extension_is_in_the_package():
    pkg = json.loads((labextension_source() / "package.json").read_text())
    load = pkg["jupyterlab"]["_build"]["load"]
    assert (labextension_source() / load).exists()


def test_lab_command_opens_the_quickstart(tmp_path):
    (tmp_path / "01_quickstart.ipynb").write_text("{}")
    cmd = lab_command(tmp_path, port=8899, browser=False)
    assert cmd[1:3] == ["-m", "jupyterlab"] and f"--ServerApp.root_dir={tmp_path}" in cmd
    assert "--no-browser" in cmd and "--port=8899" in cmd and cmd[-1] == "01_quickstart.ipynb"


def test_warm_up_runs_in_the_background_and_is_taken_once():
    warm.reset()
    release = threading.Event()
    model = object()

    def slow_loader(path):
        release.wait(10)
        return model

    t0 = time.monotonic()
    assert warm.start("some/path", loader=slow_loader)
    assert time.monotonic() - t0 < 1 and warm.warming()  # start() does not wait for the load
    release.set()
    assert warm.take() == ("some/path", model)
    warm.reset()

    def broken(path):
        raise OSError("no such checkpoint")

    warm.start("bad/path", loader=broken)
    with pytest.raises(OSError, match="no such checkpoint"):
        warm.take()
    warm.reset()
