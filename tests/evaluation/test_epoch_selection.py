"""How each protocol's reported epoch is chosen (`--epoch-selection`, an experiment's
[epoch_selection]), recorded in run.json with the protocol's other conditions; no part of a job's
identity, so a resume may change it; a run folder of 0.15 still resumes."""

import json
import shutil

import pytest
from click.testing import CliRunner
from runs import small_spec

from fer3d_bench import __version__
from fer3d_bench.cli import main
from fer3d_bench.errors import ConfigError
from fer3d_bench.evaluation.plan import is_published
from fer3d_bench.evaluation.plan import plan as make_plan
from fer3d_bench.experiments import load_experiment
from fer3d_bench.manifests import CheckedManifest
from fer3d_bench.records.run import read_run_info
from fer3d_bench.splits import MANIFESTS_DIR, read_manifest

NEW_KEYS = ("unit", "epoch_selection", "manifest_published", "subjects", "samples")


def _evaluate(small, out, *more: str) -> list[str]:
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "1", "--repetitions", "1", "--max-folds", "1", "--device", "cpu"]
    return [*args, *more]


def test_best_test_is_recorded_per_protocol_and_a_resume_may_change_it(small, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, _evaluate(small, out, "--epoch-selection", "best-test"))
    assert result.exit_code == 0, result.output
    entry = json.loads((out / "run.json").read_text())["protocols"]["bu3dfe-legacy"]
    assert entry["epoch_selection"] == "best-test"
    manifest = read_manifest(small / "m" / "bu3dfe-legacy" / "1.0.0.json")
    assert entry["unit"] == "subject"
    assert entry["manifest_published"] is False  # the small world's, not the published one
    assert entry["samples"] == len(manifest)
    assert entry["subjects"] == len({e.subject for e in manifest.samples().values()}) == 3
    result_json = out / "bu3dfe-legacy" / "0" / "0" / "result.json"
    stamp = result_json.read_bytes()
    assert json.loads(stamp)["best_test"]["epoch"] == 1
    again = CliRunner().invoke(main, _evaluate(small, out))  # the default: the last epoch
    assert again.exit_code == 0, again.output
    assert "already done" in again.output  # nothing retrained: the same jobs
    assert result_json.read_bytes() == stamp
    assert read_run_info(out / "run.json").protocols["bu3dfe-legacy"].selection == "last"
    bad = CliRunner().invoke(main, _evaluate(small, out, "--epoch-selection", "best"))
    assert bad.exit_code == 2 and "'last', 'best-test'" in bad.output


def test_the_help_says_what_a_resume_with_another_selection_does():
    for command in ("evaluate", "reproduce"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        assert "--epoch-selection [last|best-test]" in text
        assert "optimistic" in text and "a resumed run may change it" in text


def test_a_selection_given_in_the_api_is_checked(small, tmp_path):
    with pytest.raises(ConfigError, match="epoch selection 'best': expected one of last, best"):
        make_plan(small_spec(small, tmp_path / "run", epoch_selection="best"))
    assert not (tmp_path / "run").exists()


def test_a_run_folder_of_an_earlier_version_without_the_new_keys_resumes_and_gains_them(
    small, tmp_path
):
    out = tmp_path / "run"
    make_plan(small_spec(small, out))
    raw = json.loads((out / "run.json").read_text())
    for key in NEW_KEYS:  # as 0.15 wrote it
        del raw["protocols"]["bu3dfe-legacy"][key]
    raw["fer3d_bench_version"] = "0.14.0"  # any earlier one
    (out / "run.json").write_text(json.dumps(raw))
    old = read_run_info(out / "run.json").protocols["bu3dfe-legacy"]
    assert (old.unit, old.dealt_by, old.epoch_selection, old.selection) == (
        None,
        "subject",
        None,
        "last",
    )
    make_plan(small_spec(small, out, epoch_selection="best-test"))
    merged = read_run_info(out / "run.json")
    entry = merged.protocols["bu3dfe-legacy"]
    assert (entry.unit, entry.selection, entry.manifest_published) == (
        "subject",
        "best-test",
        False,
    )
    assert entry.samples and entry.subjects == 3
    assert merged.fer3d_bench_version == "0.14.0"  # what was recorded first stays
    assert merged.resumed_with[-1]["fer3d_bench_version"] == __version__


def test_only_the_installed_manifest_of_the_protocol_counts_as_published(small, tmp_path):
    published = CheckedManifest.of_protocol("bu3dfe-legacy", MANIFESTS_DIR)
    assert is_published(published)
    copy = tmp_path / "m" / "bu3dfe-legacy"
    copy.mkdir(parents=True)
    shutil.copy(MANIFESTS_DIR / "bu3dfe-legacy" / "1.0.0.json", copy / "1.0.0.json")
    assert is_published(CheckedManifest.of_protocol("bu3dfe-legacy", tmp_path / "m"))
    assert not is_published(CheckedManifest.of_protocol("bu3dfe-legacy", small / "m"))


def _experiment(tmp_path, table: str):
    text = (
        'name = "table-iv"\nversion = "1.0.0"\ntable = "IV"\nprotocols = ["bu3dfe-legacy"]\n'
        f'variants = ["full"]\n{table}'
    )
    (tmp_path / "table-iv.toml").write_text(text)
    return load_experiment("table-iv", tmp_path)


def test_an_experiments_selection_beats_the_default_and_an_explicit_one_beats_it(small, tmp_path):
    experiment = _experiment(tmp_path, '[epoch_selection]\nbu3dfe-legacy = "best-test"\n')
    assert experiment.epoch_selection == {"bu3dfe-legacy": "best-test"}
    assert experiment.record()["epoch_selection"] == {"bu3dfe-legacy": "best-test"}
    run = make_plan(small_spec(small, tmp_path / "a", experiment=experiment.record()))
    assert run.info.protocols["bu3dfe-legacy"].epoch_selection == "best-test"
    recorded = json.loads((tmp_path / "a" / "run.json").read_text())
    assert recorded["protocols"]["bu3dfe-legacy"]["epoch_selection"] == "best-test"
    spec = small_spec(small, tmp_path / "b", experiment=experiment.record(), epoch_selection="last")
    assert make_plan(spec).info.protocols["bu3dfe-legacy"].epoch_selection == "last"
    plain = load_experiment("table-iv")  # the installed one sets none
    assert plain.epoch_selection == {} and "epoch_selection" not in plain.record()
    run = make_plan(small_spec(small, tmp_path / "c", experiment=plain.record()))
    assert run.info.protocols["bu3dfe-legacy"].epoch_selection == "last"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[epoch_selection]\nbu3dfe-legacy = "best"\n', "bu3dfe-legacy = 'best': expected one of"),
        ('[epoch_selection]\nbu3dfe-full = "last"\n', "names 'bu3dfe-full', not a protocol of"),
        ("[epoch_selection]\nbu3dfe-legacy = 1\n", "bu3dfe-legacy = 1: expected one of last"),
        ('epoch_selection = "best-test"\n', r"\[epoch_selection\] must be a table"),
    ],
)
def test_an_experiments_selection_is_checked_where_it_is_read(tmp_path, table, problem):
    with pytest.raises(ConfigError, match=problem) as error:
        _experiment(tmp_path, table)
    assert str(error.value).startswith(str(tmp_path / "table-iv.toml"))
