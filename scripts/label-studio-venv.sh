#!/usr/bin/env bash
# Creates the separate virtual environment the Label Studio round-trip tests start their server from.
# Label Studio pins old pytz/dateutil/pyarrow, so it cannot share .venv with the app. Idempotent: a finished
# environment is left as it is (delete the folder to rebuild it).
#   bash scripts/label-studio-venv.sh [VENV_DIR]   (default .label-studio-venv)
set -euo pipefail
venv="${1:-.label-studio-venv}"
python="${PYTHON:-python3}"
if [ -f "$venv/.installed" ] && [ -x "$venv/bin/label-studio" ]; then
  exit 0
fi
echo "Installing Label Studio into $venv (about a minute)"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "label-studio>=1.23,<1.24"
touch "$venv/.installed"
