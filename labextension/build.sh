#!/usr/bin/env bash
# Builds the prebuilt JupyterLab extension into k2nb/labextension/ (committed, shipped in the wheel).
# Needs node >= 18 and npm. The builder is run directly with the installed JupyterLab's core metadata
# (jupyterlab/staging), so no @jupyterlab/core-meta download is needed.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@jupyterlab/builder ] || npm install --no-audit --no-fund --ignore-scripts
CORE=$(python -c "import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))")
rm -rf ../k2nb/labextension
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$CORE" .
echo "built ../k2nb/labextension; reinstall (pip install -e .) or run 'k2nb kernel install' to refresh the copy JupyterLab loads"
