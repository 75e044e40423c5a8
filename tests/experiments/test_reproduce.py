"""Every experiment of the paper, run end to end at tiny scale, reported in the paper's layout;
and published.toml checked number for number against the paper's tables, transcribed here."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from worlds import EXPERIMENTS

from fer3d_bench import experiments
from fer3d_bench.cli import main
from fer3d_bench.errors import ConfigError
from fer3d_bench.experiments import experiment_names, load_experiment
from fer3d_bench.report.published import load_published, load_tables

# The paper's published numbers (Tables IV-IX and its text), typed in from the paper by hand
PAPER = {
    "IV": [90.83, 90.24, 88.91, 90.08, 91.66],  # MFEViT, CMANet, CMFN, AFNet, the paper
    "V": [87.6],
    "VI": [88.72, 91.66],  # RGB only, RGB + depth
    "VII": [87.25, 88.17, 91.45, 91.66],  # Eq. 8, no attention + ViT, attention no ViT, both
    "VIII": [59.81, 61.73, 62.50],  # CE, center, island
    "IX": [68.48],
    "cald3r-mend3s-6": [58.30, 65.11],  # Ulrich/Marcolin et al., the paper
    "cald3r-mend3s-7": [62.50],
}
PROTOCOLS = (
    "bu3dfe-legacy",
    "bu3dfe-full",
    "bu3dfe-full-by-sample",
    "cald3r-mend3s",
    "cald3r-mend3s-6",
    "merged",
)


@pytest.fixture(scope="module")
def merged(worlds):
    """A sample of all three datasets at 64 px, with the manifests of every experiment."""
    return worlds.world(EXPERIMENTS, 64, manifests=PROTOCOLS).folder


def test_published_toml_holds_every_row_of_the_papers_tables():
    tables = load_tables()
    assert {
        name: [float(row["printed"]) for row in t["rows"]] for name, t in tables.items()
    } == PAPER
    rows = [row for t in tables.values() for row in t["rows"]]
    assert all(row["accuracy"] == pytest.approx(float(row["printed"]) / 100) for row in rows)
    assert [r["printed"] for r in tables["V"]["rows"]] == ["87.6"]  # as printed, not 87.60
    assert [r["printed"] for r in tables["VIII"]["rows"]] == ["59.81", "61.73", "62.50"]
    assert all(t["source"].endswith("of Raimondo et al. 2024") for t in tables.values())
    shown = load_published()  # in every report of the protocol: the comparison tables only
    assert [float(r["printed"]) for r in shown["bu3dfe-legacy"]] == PAPER["IV"]
    assert [float(r["printed"]) for r in shown["cald3r-mend3s"]] == PAPER["cald3r-mend3s-7"]
    text = json.dumps(tables).lower()
    assert "seed paper" not in text and "project lead" not in text


def test_every_table_has_its_experiment():
    tables = [load_experiment(n).table for n in experiment_names() if n != "inflation"]
    assert sorted(tables) == sorted(PAPER)  # inflation measures Table V's conditions
    assert load_experiment("table-viii").train == {"epochs": 10}


@pytest.mark.parametrize("name", experiment_names())
def test_each_experiment_runs_and_prints_its_table_beside_the_published_rows(
    merged, tmp_path, name
):
    experiment = load_experiment(name)
    out = tmp_path / name
    args = [
        "reproduce", name, "--dataset", str(merged / "merged.h5"), "--manifests",
        str(merged / "m"), "--out", str(out), "--preset", "tiny", "--epochs", "1",
        "--repetitions", "1", "--max-folds", "2", "--device", "cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"### {experiment.title} (experiment {name} 1.0.0)" in result.output
    report = json.loads((out / "report.json").read_text())
    rows = report["experiment"]["rows"]
    assert [float(r["printed"]) for r in rows] == PAPER[experiment.table]
    for row in rows:
        line = next(line for line in result.output.splitlines() if row["method"] in line)
        assert f"| {row['printed']} (published) |" in line
        if row["variant"]:  # ours beside it, with both conditions, but no delta: they differ
            assert row["ours"] is not None and row["delta_points"] is None
            assert row["reproduced"] == "not comparable: " + "; ".join(row["differences"])
            assert row["our_conditions"]["unit"] == "subject"
            assert row["our_conditions"]["epoch_selection"] == "last"
            if row["conditions"]["unit"] == "sample":  # the authors' code deals by sample
                assert "vs folds by sample: the same person in train and test" in line
            assert row["reproduced"] in line and "in part" not in line
        else:
            assert row["ours"] is None and "another method" in line
    info = json.loads((out / "run.json").read_text())
    assert info["experiment"]["name"] == name
    assert sorted(info["variants"]) == sorted(experiment.variants)
    markdown = (out / "report.md").read_text().lower()  # the paper is cited, by name
    assert "seed paper" not in markdown and "project lead" not in markdown
    assert "raimondo" in markdown


def test_table_viii_trains_its_variants_for_the_papers_ten_epochs(merged, tmp_path):
    """On the paper preset the experiment's [train] table holds (planned, not trained)."""
    from fer3d_bench.evaluation.plan import EvalSpec, plan

    experiment = load_experiment("table-viii")
    spec = EvalSpec(
        dataset=merged / "merged.h5",
        protocols=experiment.protocols,
        out=tmp_path / "viii",
        manifests=merged / "m",
        ablations=experiment.ablations,
        repetitions=1,
        max_folds=1,
        experiment=experiment.record(),
    )
    jobs = plan(spec).jobs
    assert {j.identity.variant: j.identity.training.config["epochs"] for j in jobs} == {
        "full": 10,
        "ce": 10,
        "center": 10,
    }
    assert {j.identity.variant: j.identity.training.config["loss"]["lambda1"] for j in jobs} == {
        "full": 0.01,
        "ce": 0.0,
        "center": 0.01,
    }
    assert [j.identity.training.config["loss"]["lambda2"] for j in jobs] == [10.0, 10.0, 0.0]
    another = load_experiment("table-vii")
    with pytest.raises(ConfigError, match="holds experiment 'table-viii', not 'table-vii'"):
        plan(EvalSpec(**{**spec.__dict__, "experiment": another.record()}))


def test_inflation_prints_three_settings_their_differences_and_the_published_row(merged, tmp_path):
    out = tmp_path / "inflation"
    args = [
        "reproduce", "inflation", "--dataset", str(merged / "merged.h5"), "--manifests",
        str(merged / "m"), "--out", str(out), "--preset", "tiny", "--epochs", "2",
        "--max-folds", "2", "--device", "cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["protocols"]["bu3dfe-full"]["epoch_selection"] == "last"
    assert run["protocols"]["bu3dfe-full-by-sample"]["epoch_selection"] == "best-test"
    assert run["protocols"]["bu3dfe-full-by-sample"]["unit"] == "sample"
    measured = json.loads((out / "inflation.json").read_text())
    settings = {s["name"]: s for s in measured["settings"]}
    assert list(settings) == ["subject-last", "sample-last", "sample-best-test"]
    # a fold's best test epoch scores at least its last, on the same test samples
    assert settings["sample-best-test"]["accuracy"] >= settings["sample-last"]["accuracy"]
    assert {s["predictions"] for s in settings.values()} == {measured["samples"]}
    for name, interval in measured["differences"].items():
        base, other = name.split(" - ")[::-1]
        estimate = settings[other]["accuracy"] - settings[base]["accuracy"]
        assert interval["estimate"] == pytest.approx(estimate)
        assert interval["low"] <= interval["estimate"] <= interval["high"]
        assert interval["resamples"] == 10_000 and interval["seed"] == 0
        assert f"{name}: {100 * estimate:+.2f} points, 95% interval [" in result.output
    (published,) = measured["published"]
    assert published["printed"] == "87.6" and published["conditions"]["unit"] == "sample"
    assert "published: 87.6 %" in result.output and "no difference is given" in result.output
    assert "(optimistic)" in result.output
    assert (out / "inflation.md").read_text().startswith("# Inflation")


def test_an_inflation_table_must_name_a_protocol_of_each_unit(tmp_path):
    source = (Path(experiments.__file__).parent / "inflation.toml").read_text()
    wrong = source.replace('sample = "bu3dfe-full-by-sample"', 'sample = "bu3dfe-full"')
    (tmp_path / "inflation.toml").write_text(wrong)
    with pytest.raises(ConfigError, match=r"\[inflation\] sample = bu3dfe-full, which is not"):
        load_experiment("inflation", tmp_path)
