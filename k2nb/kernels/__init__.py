"""The "Python 3 (k2nb)" kernel: an IPython kernel that starts with k2nb loaded and the model warming.

The kernelspec runs the stock ipykernel launcher with ``--IPKernelApp.extensions=k2nb`` (so
`%load_ext k2nb` has happened before the first cell) and ``K2NB_WARM=1`` in its environment; the
extension then loads the default model in a background thread (`k2nb.kernels.warm`), so the first
cell is not delayed and the first `%%k2think` finds the model ready (or waits only for the rest).

`k2nb kernel install` / `python -m k2nb.kernels install` write the kernelspec; `k2nb lab` installs it
if missing, copies the examples to a working folder and opens JupyterLab on the quickstart.
"""

from __future__ import annotations

from k2nb.kernels.install import KERNEL_DISPLAY_NAME, KERNEL_NAME, install_kernelspec, kernelspec_dict

__all__ = ["KERNEL_DISPLAY_NAME", "KERNEL_NAME", "install_kernelspec", "kernelspec_dict"]
