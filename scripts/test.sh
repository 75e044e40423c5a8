#!/usr/bin/env bash
# The test suite, with the one-node Slurm cluster its `slurm` tests run against: started here
# (installed first where missing) unless one is already up in .slurm, and then stopped again by
# its pids however pytest ends, its state folder under /tmp (about 180 MB) and the .slurm link
# removed. Where no cluster can start (no root, no sudo), the slurm tests
# are skipped with that reason; with FER3D_REQUIRE_SLURM=1 (CI) they fail instead.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if bash scripts/slurm-cluster.sh status >/dev/null 2>&1; then
  echo "test: using the Slurm cluster already running in .slurm"
elif bash scripts/slurm-cluster.sh start; then
  trap 'bash scripts/slurm-cluster.sh remove' EXIT  # stopped, and its state folder deleted
  trap 'exit 130' INT
  trap 'exit 143' TERM  # so that the EXIT trap runs when CI stops us
else
  echo "test: no Slurm cluster could be started: the tests marked slurm are skipped" >&2
fi
"$VENV/bin/python" -m pytest "$@"
