#!/usr/bin/env bash
# The pure-Python wheels a GPU machine's own Python lacks for scripts/gpu-check.sh, built here
# into .whl/ (git ignores it) at the versions this checkout's .venv holds, so that the device
# check runs there with nothing fetched: a bare GPU machine with PyTorch, timm, h5py, pandas,
# scipy, matplotlib, OpenCV and scikit-learn of its own, but no internet, lacks submitit (the
# launchers), grad-cam and its ttach (Grad-CAM). gpu-check.sh installs them from .whl/ into a
# folder of its own when the checkout has no .venv.
#
#   bash scripts/gpu-wheels.sh        # then carry .whl along with the checkout
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
if [[ ! -x $PY ]]; then
  echo "gpu-wheels: $PY is missing: run scripts/setup.sh first (the versions come from it)" >&2
  exit 2
fi
rm -rf .whl.tmp && mkdir .whl.tmp
pins=()
for name in submitit grad-cam ttach; do
  version=$("$PY" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
  if [[ -z $version ]]; then
    echo "gpu-wheels: $name is not installed in $PY's environment" >&2
    exit 2
  fi
  pins+=("$name==$version")
done
# pip wheel: grad-cam is published as a source archive only; these build to py3-none-any wheels
"$PY" -m pip wheel --quiet --no-deps --no-cache-dir -w .whl.tmp "${pins[@]}"
for wheel in .whl.tmp/*.whl; do
  tag=$(unzip -p "$wheel" '*.dist-info/WHEEL' | sed -n 's/^Tag: //p')
  if [[ $tag != py3-none-any ]]; then
    echo "gpu-wheels: $wheel is $tag, not a pure-Python wheel: it may not install there" >&2
    exit 1
  fi
done
rm -rf .whl && mv .whl.tmp .whl
echo "gpu-wheels: $(ls .whl | tr '\n' ' ')in .whl/ ($(du -sh .whl | cut -f1)); carry .whl"
