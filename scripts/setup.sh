#!/usr/bin/env bash
# Installs whatever is missing for fer3d-bench, and nothing else; safe to run again.
#   system: libosmesa6 (offscreen OpenGL for pyrender), libusb-1.0-0 (open3d imports it),
#           libgl1 and libglib2.0-0 (OpenCV, which the grad-cam package imports, links them),
#           chromium (headless, for the tests that render the leaderboard page as a browser does)
#   python: a virtual environment in .venv with the package and its dev extra
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for pkg in libosmesa6 libusb-1.0-0 libgl1 libglib2.0-0 chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.fer3d-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing fer3d-bench and its dependencies into $VENV (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
  # torch stack first: Mesa's LLVM must not load before triton's (see render/backends.py)
  "$VENV/bin/python" -c 'import torch, timm, open3d, pyrender, fer3d_bench' \
    || { echo "setup: the installed stack does not import; see the messages above" >&2; exit 1; }
  rm -f "$VENV"/.fer3d-installed-*
  touch "$stamp"
fi
