"""CalD3r & MenD3s indexing through the layout configuration, on a tree built by hand."""

from importlib import resources

import pytest

from fer3d_bench.errors import ConfigError
from fer3d_bench.sources import CalD3rMenD3s, load_layout

from handmade import rgbd_pair


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "cm"
    rgbd_pair(root, "CalD3r", "Anger", "F_001_0001_anger")
    rgbd_pair(root, "CalD3r", "Anger", "F_001_0002_anger")
    rgbd_pair(root, "MenD3s", "Neutral", "M_07_0001_neutral")
    rgbd_pair(root, "CalD3r", "Anger", "F_002_0001_happiness")  # mislabelled
    rgbd_pair(root, "CalD3r", "Fear", "F_003_0001_fear")
    (root / "CalD3r" / "Fear" / "DEPTH" / "F_003_0001_fear_Depth.png").unlink()  # unpaired
    rgbd_pair(root, "CalD3r", "Fear", "F_003_0002_joy")  # unknown token
    (root / "CalD3r" / "readme.txt").write_text("hello")
    return root


def test_pairs_become_samples(tree):
    result = CalD3rMenD3s(tree).scan()
    assert [s.sample_id for s in result.samples] == [
        "cald3r:F_001_0001_anger",
        "cald3r:F_001_0002_anger",
        "mend3s:M_07_0001_neutral",
    ]
    sample = result.samples[2]
    assert (sample.dataset, sample.subject, sample.label, sample.sex) == (
        "mend3s",
        "mend3s:07",
        "neutral",
        "M",
    )
    assert sample.files["depth"].parent.name == "DEPTH"


def test_bad_files_are_listed(tree):
    skipped = {s.path.name: s.reason for s in CalD3rMenD3s(tree).scan().skipped}
    assert (
        "mislabelled: file name says 'happiness' but it lies in Anger/"
        in skipped["F_002_0001_happiness_Color.png"]
    )
    assert "no depth file" in skipped["F_003_0001_fear_Color.png"]
    assert "label token 'joy' is not in the label table" in skipped["F_003_0002_joy_Depth.png"]
    assert "not in the expected layout" in skipped["readme.txt"]
    assert len(skipped) == 2 + 1 + 2 + 1


def test_load_and_depth_checks(tree):
    source = CalD3rMenD3s(tree)
    pair = source.load(source.scan().samples[0])
    assert pair.rgb.shape == (6, 6, 3) and pair.depth.dtype.name == "uint16"
    assert int(pair.depth[0, 0]) == 4000 and pair.depth_unit_mm == 0.125
    rgbd_pair(tree, "CalD3r", "Anger", "F_001_0001_anger", depth_mode="L")  # 8-bit depth
    result = source.scan(check=True)
    assert "cald3r:F_001_0001_anger" not in {s.sample_id for s in result.samples}
    assert any("expected a 16-bit" in s.reason for s in result.skipped)


def test_custom_layout(tree, tmp_path):
    custom = tmp_path / "layout.toml"
    default = resources.files("fer3d_bench.sources").joinpath("cald3r_mend3s.toml")
    text = default.read_text().replace("depth_unit_mm = 0.125", "depth_unit_mm = 1.0")
    custom.write_text(text.replace('MenD3s = "mend3s"', ""))
    source = CalD3rMenD3s(tree, layout=load_layout(custom))
    result = source.scan()
    assert {s.dataset for s in result.samples} == {"cald3r"}
    assert source.load(result.samples[0]).depth_unit_mm == 1.0


def test_bad_layout(tmp_path):
    bad = tmp_path / "layout.toml"
    bad.write_text('rgb_pattern = "(?P<sex>x)"\n')
    with pytest.raises(ConfigError, match="invalid layout"):
        load_layout(bad)
