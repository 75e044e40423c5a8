"""A real tiny evaluation stores each fold's test embeddings, in the order of its predictions,
and the report draws their t-SNE."""

import hashlib
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from runs import small_spec

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import Normalisation
from fer3d_bench.evaluation.local import run_local
from fer3d_bench.evaluation.plan import plan as make_plan
from fer3d_bench.records.embeddings import EMBEDDINGS, read_embeddings
from fer3d_bench.records.result import read_result
from fer3d_bench.report import write_report
from fer3d_bench.train.checkpoint import CHECKPOINT, read_checkpoint
from fer3d_bench.train.config import PRESETS, config_from_dict
from fer3d_bench.train.data import FerTorchDataset
from fer3d_bench.train.losses import FerLoss
from fer3d_bench.train.model import FerNet

FOLDS = ["bu3dfe-legacy/0/0", "bu3dfe-legacy/0/1"]
TSNE = "figures/full_bu3dfe-legacy_tsne.png"


@pytest.fixture(scope="module")
def evaluated(small, tmp_path_factory):
    """A run folder with two finished folds of the tiny preset, one epoch each."""
    out = tmp_path_factory.mktemp("embeddings") / "run"
    summaries = run_local(make_plan(small_spec(small, out)).jobs, progress=False)
    assert [s.status for s in summaries] == ["ok", "ok"]
    return out


def _model_embeddings(small, fold_dir, result, sample_ids) -> np.ndarray:
    """What the fold's checkpointed model, in eval mode, gives for `sample_ids`."""
    config = config_from_dict(result.job.training.config)
    saved = read_checkpoint(fold_dir / CHECKPOINT)
    model = FerNet(replace(config.model, num_classes=len(result.classes)))
    model.load_state_dict(saved["model"])
    model.eval()
    norm = Normalisation(**saved["normalisation"])
    with H5Dataset(small / "merged.h5") as data:
        indices = [data.index_of(sample) for sample in sample_ids]
        samples = FerTorchDataset(data, indices, norm, config.model.input_size)
        rgb = torch.stack([samples[k][0] for k in range(len(indices))])
        depth = torch.stack([samples[k][1] for k in range(len(indices))])
    with torch.no_grad():
        return model(rgb, depth)[1].numpy()


@pytest.mark.parametrize("fold", FOLDS)
def test_each_finished_fold_stores_its_test_embeddings_in_prediction_order(small, evaluated, fold):
    fold_dir = evaluated / fold
    raw = json.loads((fold_dir / "result.json").read_text())
    content = (fold_dir / EMBEDDINGS).read_bytes()
    n, dims = len(raw["predictions"]), PRESETS["tiny"].model.token_dim
    assert raw["embeddings"] == {
        "file": EMBEDDINGS,
        "sha256": hashlib.sha256(content).hexdigest(),
        "shape": [n, dims],
        "dtype": "float16",
        "order": "sorted sample ids",
    }
    result = read_result(fold_dir / "result.json")
    rows = read_embeddings(result, fold_dir / "result.json")
    assert rows.shape == (n, dims) and rows.dtype == np.float16
    samples = sorted(raw["predictions"])
    assert list(raw["predictions"]) == samples  # result.json's order is the rows' order
    picked = [0, 1, n // 2, n - 1]
    recomputed = _model_embeddings(small, fold_dir, result, [samples[k] for k in picked])
    stored = rows.astype(np.float32)
    np.testing.assert_allclose(stored[picked], recomputed, rtol=2e-3, atol=2e-3)  # float16
    # and no other row is as close: a row order other than the predictions' would show
    distances = np.linalg.norm(recomputed[:, None] - stored[None], axis=-1)
    assert distances.argmin(axis=1).tolist() == picked
    assert not list(fold_dir.glob(f".{EMBEDDINGS}.tmp-*"))  # no temporary left behind


def test_the_report_draws_the_tsne_of_the_first_fold_the_same_every_time(evaluated):
    paths = write_report(evaluated)
    assert TSNE in paths.report.groups[0].figures
    assert f"- [{TSNE}]({TSNE})" in paths.markdown.read_text()
    first = (evaluated / TSNE).read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    write_report(evaluated)
    assert (evaluated / TSNE).read_bytes() == first


def test_a_failed_fold_stores_no_embeddings(small, tmp_path, monkeypatch):
    forward = FerLoss.forward

    def nan_loss(self, *args):  # the trainer's own divergence check fires
        total, parts = forward(self, *args)
        return total * math.nan, parts

    monkeypatch.setattr(FerLoss, "forward", nan_loss)
    out = tmp_path / "run"
    summaries = run_local(make_plan(small_spec(small, out, max_folds=1)).jobs, progress=False)
    assert [s.status for s in summaries] == ["failed"]
    assert json.loads((out / FOLDS[0] / "result.json").read_text())["embeddings"] is None
    assert not (out / FOLDS[0] / EMBEDDINGS).exists()
    paths = write_report(out)
    assert not any(name.endswith("_tsne.png") for name in paths.report.figures)
