"""Importing the library leaves the user's matplotlib backend alone, and figures still save."""

import subprocess
import sys

import pytest
from matplotlib.figure import Figure

from fer3d_bench.plots import save_figure

# every module of the package that imports matplotlib
FIGURE_MODULES = [
    "fer3d_bench.plots",
    "fer3d_bench.render.overlay",
    "fer3d_bench.dataset.inspect",
    "fer3d_bench.explain.run",
    "fer3d_bench.report.figures",
]


@pytest.mark.parametrize("module", FIGURE_MODULES)
def test_import_keeps_the_users_backend(module):
    """In a fresh interpreter, as a user would: a non-Agg backend chosen first stays chosen."""
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        f"import {module}; print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().lower() == "svg", f"importing {module} switched the backend"


def test_save_figure_takes_plain_and_pyplot_figures(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    plain = Figure(figsize=(2, 2))
    plain.subplots().plot([0, 1], [1, 0])
    made = plt.figure(figsize=(2, 2))
    made.subplots().plot([0, 1], [0, 1])
    assert save_figure(plain, tmp_path / "plain.png") == tmp_path / "plain.png"
    save_figure(made, tmp_path / "pyplot.png")
    for name in ("plain.png", "pyplot.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert made.number not in plt.get_fignums()  # pyplot let go of the figure it made
