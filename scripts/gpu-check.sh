#!/usr/bin/env bash
# The one device check of a GPU machine: the tests marked `cuda` (tests/cuda), then
# benchmarks/gpu_bench.py --quick, then ONE summary table (each cuda test's outcome; pairs/s per
# lever and per number of folds at once; the projected legacy protocol). Meant to finish within
# 8 minutes on one H200. Nothing is fetched: it runs with the checkout's .venv, or, where there is
# none (a bare GPU machine), with that machine's python3 if it has PyTorch, the checkout on
# PYTHONPATH and the pure-Python wheels it lacks installed from .whl/ into a folder of its own
# (scripts/gpu-wheels.sh builds them here; carry .whl with the checkout).
#
#   bash scripts/gpu-check.sh
#
# Where a GPU is present (nvidia-smi lists one, or torch sees one) the cuda tests run under
# FER3D_REQUIRE_CUDA=1, so a GPU that torch cannot use fails them instead of skipping them.
# Without one (a laptop, CI) the same path runs: the cuda tests skip, saying why, and the
# benchmark says there is no GPU. A failing test does not stop the benchmark; the exit status
# is non-zero if anything failed. The JUnit XML, the logs, the benchmark's JSON and the summary
# go to $OUT if set (the device machine returns what is written there), else to a temp folder.
# Time (seconds): GPU_CHECK_SECONDS (default 470) in all; the cuda tests get at most
# CUDA_TESTS_TIMEOUT (260) of it, the benchmark what is left (at least 120), and it starts no
# lever after what is left less 100 s (its folds-at-once rows, which the projection needs).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
RESULTS=${OUT:-$(mktemp -d -t gpu-check-XXXXXX)}
mkdir -p "$RESULTS"
if [[ ! -x $PY ]]; then
  if ! python3 -c 'import torch' >/dev/null 2>&1; then
    echo "gpu-check: no $PY, and python3 has no PyTorch: bring the repository's .venv" \
      "(scripts/setup.sh makes it)" >&2
    exit 2
  fi
  PY=python3
  site=${GPU_CHECK_SITE:-/tmp/fer3d-gpu-check-site}
  if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" .whl/*.whl || exit 2
  fi
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  # what the cuda tests and the benchmark import (rendering's pyrender, open3d and trimesh, and
  # tuning's optuna, are not among them)
  missing=$(python3 -c '
import importlib.util
names = ["numpy", "scipy", "pandas", "h5py", "torch", "torchvision", "timm", "safetensors",
         "click", "tqdm", "PIL", "matplotlib", "sklearn", "threadpoolctl", "cv2", "submitit",
         "pytorch_grad_cam", "ttach", "pytest"]
def found(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
print(" ".join(n for n in names if not found(n)))')
  if [[ -n $missing ]]; then
    echo "gpu-check: no .venv here, and python3 lacks: $missing (run scripts/gpu-wheels.sh" \
      "where pip works and carry .whl, or bring a .venv)" >&2
    exit 2
  fi
  echo "gpu-check: no .venv: $(python3 -c 'import sys, torch; print("python", sys.version.split()[0], "with torch", torch.__version__)')," \
    "the checkout on PYTHONPATH, .whl/ installed into $site"
fi

seen=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  seen="nvidia-smi lists $(nvidia-smi -L | head -n 1)"
fi
usable=$("$PY" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null || echo False)
if [[ $usable == True ]]; then
  seen=${seen:-"torch sees a CUDA device"}
fi
if [[ -n $seen ]]; then
  export FER3D_REQUIRE_CUDA=1
  echo "gpu-check: a GPU is present ($seen; torch can use it: $usable): FER3D_REQUIRE_CUDA=1"
else
  echo "gpu-check: no GPU here (no nvidia-smi answer, torch sees none): the cuda tests skip"
fi
echo "gpu-check: results in $RESULTS"

echo "== cuda tests =="
timeout "${CUDA_TESTS_TIMEOUT:-260}" "$PY" -m pytest -v -rA -m cuda tests/cuda \
  -p no:cacheprovider --junitxml="$RESULTS/cuda-tests.xml" 2>&1 | tee "$RESULTS/cuda-tests.log"
tests_rc=${PIPESTATUS[0]}

left=$((${GPU_CHECK_SECONDS:-470} - SECONDS))
left=$((left < 120 ? 120 : left))
echo "== benchmarks/gpu_bench.py --quick ($left s left) =="
timeout "$left" "$PY" benchmarks/gpu_bench.py --quick --budget-s $((left - 100)) \
  --json "$RESULTS/gpu_bench.json" 2>&1 | tee "$RESULTS/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}

"$PY" - "$RESULTS" "$tests_rc" "$bench_rc" <<'EOF' | tee "$RESULTS/summary.txt"
"""One table of what ran: each cuda test's outcome, then the benchmark's numbers."""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

results, tests_rc, bench_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print("\n== gpu-check summary ==")
xml = results / "cuda-tests.xml"
cases = list(ET.parse(xml).iter("testcase")) if xml.is_file() else []
print(f"cuda tests (pytest exit {tests_rc}{', timed out' if tests_rc == 124 else ''}):")
for case in cases:
    name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
    outcome, why = "passed", ""
    for tag in ("failure", "error", "skipped"):
        found = case.find(tag)
        if found is not None:
            outcome = "failed" if tag == "failure" else tag
            why = (found.get("message") or "").splitlines()[0][:90] if found.get("message") else ""
            break
    print(f"  {outcome:<8} {name:<78} {float(case.get('time', 0)):6.1f} s  {why}")
if not cases:  # pytest was stopped before its report: the outcomes -v printed as they came
    log = (results / "cuda-tests.log").read_text(errors="replace")
    for name, outcome in re.findall(r"^tests/cuda/(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)", log, re.M):
        print(f"  {outcome.lower():<8} {name}")
    print("  (no JUnit report: pytest did not finish; tests not listed did not run)")

bench = results / "gpu_bench.json"
data = json.loads(bench.read_text()) if bench.is_file() else {}
print(f"benchmark (exit {bench_rc}{', timed out' if bench_rc == 124 else ''}):", end=" ")
if not data.get("device"):
    print(data.get("skipped") or "no results (see gpu_bench.log)")
else:
    print(f"{data['preset']} preset on {data['device']}, {data['pairs']} pairs, "
          f"{data['epochs']} epochs")
    print(f"  {'lever':<12} {'changes':<13} {'pairs/s':>9} {'vs base':>8} {'first call':>11} "
          f"{'compile':>8}")
    for row in data["levers"]:
        if "pairs_per_s" not in row:
            print(f"  {row['lever']:<12} {row['kind']:<13} {row.get('error') or row.get('skipped')}")
            continue
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row else "-"
        extra = f"{row['compile_s']:.0f} s" if "compile_s" in row else "-"
        print(f"  {row['lever']:<12} {row['kind']:<13} {row['pairs_per_s']:9.1f} {ratio:>8} "
              f"{row['first_call_s']:9.1f} s {extra:>8}")
    flags = data.get("recommended", {}).get("flags") or "the defaults"
    print(f"  folds at once, with {flags}:")
    for row in data["folds"]:
        what = (f"{row['pairs_per_s']:9.1f} pairs/s" if "pairs_per_s" in row
                else row.get("error") or row.get("skipped"))
        print(f"    {row['concurrency']:2d} at once: {what}")
    if "projected_legacy_h" in data:
        best = data["best"]
        print(f"  projected legacy protocol (1,000 x 20 epochs x 648 pairs): "
              f"{data['projected_legacy_h']:.1f} h, {best['concurrency']} at once with "
              f"{best['flags'] or 'the defaults'}")
failed = [f"cuda tests (exit {tests_rc})"] if tests_rc else []
failed += [f"benchmark (exit {bench_rc})"] if bench_rc else []
failed += [f"benchmark: {line}" for line in data.get("failed", [])]
print("result:", "FAILED: " + "; ".join(failed) if failed else "OK")
EOF
[[ $tests_rc -eq 0 && $bench_rc -eq 0 ]]
