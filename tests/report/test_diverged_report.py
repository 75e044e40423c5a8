"""A fold whose training went to NaN: `evaluate` writes the report (strict JSON, the NaN as
null) and report.md, names the diverged fold, and exits 1, as the README promises."""

import json
import math

from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.train import loop

FOLD = "bu3dfe-legacy/0/0"


def _not_json(token: str):
    raise AssertionError(f"{token} is not JSON")


def test_evaluate_writes_the_report_of_a_diverged_fold_and_exits_1(small, tmp_path, monkeypatch):
    real = loop._train_epoch

    def diverging(fit, epoch, *args):
        """Epoch 1 ends with a NaN loss term logged (lr = nan does that), epoch 2 diverges."""
        if epoch == 0:
            return real(fit, epoch, *args) | {"loss_island": math.nan}
        raise FloatingPointError(f"loss became nan in epoch {epoch + 1}")

    monkeypatch.setattr(loop, "_train_epoch", diverging)
    out = tmp_path / "run"
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "2", "--repetitions", "1", "--max-folds", "1", "--device", "cpu"]
    result = CliRunner().invoke(main, args)

    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{FOLD}: FAILED (training diverged: loss became nan in epoch 2)" in result.output
    assert (out / "report.md").exists() and (out / "report.json").exists()
    for path in out.rglob("*.json"):  # every one strict JSON
        json.loads(path.read_text(), parse_constant=_not_json)
    for line in (out / FOLD / "metrics.jsonl").read_text().splitlines():
        assert json.loads(line, parse_constant=_not_json)["loss_island"] is None
    fold = json.loads((out / FOLD / "result.json").read_text())
    assert fold["status"] == "failed" and fold["history"][0]["loss_island"] is None
    report = json.loads((out / "report.json").read_text())
    assert report["groups"][0]["aggregate"]["folds_failed"] == 1
    markdown = (out / "report.md").read_text()
    assert "| full | bu3dfe-legacy | 0 | 0 | training diverged: loss became nan in epoch 2" in (
        markdown
    )
