"""Every numeric render option is a finite number in its range, on the command line (click says
which option and what it takes) and in the Python API (a ConfigError naming the option)."""

import math

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.errors import ConfigError
from fer3d_bench.render.options import RenderOptions

from handmade import bu3dfe_scan


@pytest.mark.parametrize("command", ["render-depth", "build-dataset"])
@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--size", "0", "0 is not in the range 16<=x<=2048"),
        ("--size", "26.5", "'26.5' is not a valid integer"),
        ("--margin", "nan", "'nan' is not a finite number"),
        ("--margin", "-0.1", "-0.1 is not in the range 0.0<=x<=1.0"),
        ("--min-iou", "inf", "inf is not in the range 0.0<=x<=1.0"),
        ("--landmark-allowance", "inf", "'inf' is not a finite number"),
        ("--min-iou", "1.5", "1.5 is not in the range 0.0<=x<=1.0"),
        ("--landmark-allowance", "-1", "-1.0 is not in the range x>=0.0"),
        ("--workers", "0", "0 is not in the range x>=1"),
    ],
)
def test_out_of_range_options_are_refused_naming_the_option(
    tmp_path, command, option, value, expected
):
    root = tmp_path / "bu"
    bu3dfe_scan(root / "F0001", "F0001_NE00WH")
    out = tmp_path / ("out.h5" if command == "build-dataset" else "out")
    where = ["--bu3dfe", root] if command == "build-dataset" else [root, "--dataset", "bu3dfe"]
    args = [command, *where, "--out", out, option, value]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for '{option}': {expected}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bu"]  # nothing written


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"size": 0}, "render option size = 0: must be from 16 to 2048"),
        ({"size": 64.0}, "render option size = 64.0: must be a whole number"),
        ({"size": True}, "render option size = True: must be a whole number"),
        ({"margin": math.nan}, "render option margin = nan: must be a finite number"),
        ({"margin": "0.1"}, "render option margin = '0.1': must be a finite number"),
        ({"min_iou": -math.inf}, "render option min_iou = -inf: must be a finite number"),
        ({"landmark_allowance_px": -2}, "landmark_allowance_px = -2: must be at least 0"),
        ({"backend": "vulkan"}, "render option backend = 'vulkan': must be one of pyrender"),
        ({"fit_rotation": "yes"}, "render option fit_rotation = 'yes': must be true or false"),
    ],
)
def test_the_python_api_refuses_the_same(changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        RenderOptions(**changes)
    assert "\n" not in str(info.value)


def test_the_defaults_and_the_bounds_are_accepted():
    assert RenderOptions() == RenderOptions(260, 0.1, "pyrender", False, 0.95, 2.0)
    RenderOptions(size=16, margin=0, min_iou=1, landmark_allowance_px=0)
    RenderOptions(size=2048, margin=1.0, min_iou=0.0, landmark_allowance_px=1e6)
