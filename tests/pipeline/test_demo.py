"""demo: every stage on a reduced sample, reusing the sample and render a run left behind."""

import shutil

from fer3d_bench.pipeline.demo import run_demo

FAST = {"epochs": 1}


def test_demo_runs_every_stage_on_a_reduced_sample(small, small_config, tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    shutil.copytree(small / "sample", out / "sample")  # reused, as a second demo run would
    shutil.copytree(small / "render", out / "render")
    lines = []
    paths, tables = ev_demo(out, lines, small_config)
    assert (out / "merged.h5").is_file()
    assert (out / "manifests" / "bu3dfe-full" / "1.0.0.json").is_file()
    assert "bu3dfe-full 1.0.0" in tables and "bu3dfe-legacy 1.0.0" in tables
    assert "2 of 100 repetitions" in tables
    assert paths.markdown.read_text().count("not reproduced") >= 2
    assert any("reusing" in line for line in lines)


def ev_demo(out, lines, sample_config):
    return run_demo(
        out,
        workers=1,
        progress=False,
        echo=lines.append,
        sample_config=sample_config,
        evaluations=(("bu3dfe-full", None, 2), ("bu3dfe-legacy", 2, 1)),
        overrides=FAST,
    )
