"""`fer3d-bench explain` on a real tiny run folder: the figure, the heatmaps of correctly
classified samples, and the refusals (a crafted checkpoint, another dataset)."""

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from runs import small_spec

from fer3d_bench.cli import main
from fer3d_bench.errors import Fer3dError
from fer3d_bench.explain.run import explain
from fer3d_bench.pipeline.evaluate import Launch, evaluate
from fer3d_bench.records.result import read_result

PNG = b"\x89PNG\r\n\x1a\n"


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


@pytest.fixture(scope="module")
def run(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    spec = small_spec(small, out, overrides={"epochs": 3}, max_folds=1)
    evaluate(spec, Launch(progress=False), echo=lambda line: None)
    return out


def test_explain_draws_heatmaps_of_correctly_classified_samples(run):
    result = CliRunner().invoke(main, ["explain", str(run), "--per-class", "1"])
    assert result.exit_code == 0, result.output
    assert "weak evidence of where the model looks" in result.output  # tiny: transformer head
    figure = run / "figures" / "explain" / "full_bu3dfe-legacy_0_0_gradcam.png"
    assert figure.read_bytes()[:8] == PNG
    maps = np.load(figure.with_suffix(".npz"), allow_pickle=False)
    fold = read_result(run / "bu3dfe-legacy" / "0" / "0" / "result.json")
    ids = list(maps["sample_ids"])
    assert ids and all(fold.predictions[s]["true"] == fold.predictions[s]["pred"] for s in ids)
    assert len({fold.predictions[s]["true"] for s in ids}) == len(ids)  # one per class
    assert maps["rgb"].shape == maps["depth"].shape == (len(ids), 64, 64)
    assert maps["rgb"].min() >= 0.0 and maps["rgb"].max() <= 1.0


def test_a_crafted_checkpoint_is_refused_and_never_run(run, tmp_path):
    import torch

    copy = shutil.copytree(run, tmp_path / "run")
    marker = tmp_path / "payload-ran"
    torch.save({"model": Payload(marker)}, copy / "bu3dfe-legacy" / "0" / "0" / "checkpoint.pt")
    with pytest.raises(Fer3dError, match="checkpoint.pt: holds objects other than tensors"):
        explain(copy)
    assert not marker.exists()


def test_another_dataset_is_refused_by_its_fingerprint(run, small, tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(small / "merged.h5", other)
    import h5py

    with h5py.File(other, "a") as h5:
        h5.attrs["fingerprint"] = "0" * 64
    with pytest.raises(Fer3dError, match="is not the dataset"):
        explain(run, dataset=other)
