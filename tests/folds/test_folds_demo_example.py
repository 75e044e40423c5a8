"""The `fer3d_bench.folds` example as the README should carry it (issue 28): it runs on the
demo's output as it is, and a mismatch met through Python says what to pass in Python.

EXAMPLE is run here exactly as written, in a folder laid out as `fer3d-bench demo` leaves it
(demo/merged.h5, demo/manifests/), made from a generated sample; the README carries it
under `<!-- folds-example -->`, the README's block must be this very text.
"""

import csv
import shutil
from pathlib import Path

import pytest

from fer3d_bench.errors import ManifestMismatch
from fer3d_bench.folds import folds

EXAMPLE = """\
import csv

import timm
import torch
from torch.utils.data import DataLoader

from fer3d_bench.folds import folds
from fer3d_bench.folds.datasets import torch_datasets

# the demo's output as it is; for your data: your merged file, and the folder of manifests it
# was split with (left out, manifests= means the published ones, made for the real datasets)
DATASET, MANIFESTS, PROTOCOL = "demo/merged.h5", "demo/manifests", "bu3dfe-full"
MODEL, SIZE, EPOCHS = "resnet18", 64, 2
rows = []
for fold in folds(PROTOCOL, DATASET, manifests=MANIFESTS):
    train, test = torch_datasets(fold, size=SIZE, augment=True)
    torch.manual_seed(fold.repetition * 100 + fold.fold)
    model = timm.create_model(MODEL, num_classes=len(fold.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(EPOCHS):
        train.set_epoch(epoch)
        model.train()
        for rgb, _depth, label, _ids in DataLoader(train, batch_size=16, shuffle=True):
            loss = torch.nn.functional.cross_entropy(model(rgb), label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        for rgb, _depth, _label, ids in DataLoader(test, batch_size=64):
            for sample_id, k in zip(ids, model(rgb).argmax(1).tolist()):
                rows.append([fold.repetition, fold.fold, sample_id, fold.classes[k]])
with open("predictions.csv", "w", newline="") as out:
    csv.writer(out).writerows([["repetition", "fold", "sample_id", "predicted"], *rows])
"""

README = Path(__file__).parents[2] / "README.md"
MARKER = "<!-- folds-example -->\n```python\n"


@pytest.fixture
def demo_like(small, tmp_path, monkeypatch):
    """A folder holding demo/merged.h5 and demo/manifests/ as the demo writes them."""
    (tmp_path / "demo").mkdir()
    shutil.copy(small / "merged.h5", tmp_path / "demo" / "merged.h5")
    shutil.copytree(small / "m", tmp_path / "demo" / "manifests")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_example_runs_on_the_demos_output_as_it_is(demo_like):
    exec(compile(EXAMPLE, "folds-demo-example", "exec"), {})
    with open(demo_like / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    listed = folds("bu3dfe-full", "demo/merged.h5", manifests="demo/manifests")
    expected = sorted((str(f.repetition), str(f.fold), i) for f in listed for i in f.test_ids)
    assert sorted((r["repetition"], r["fold"], r["sample_id"]) for r in rows) == expected


def test_the_readme_carries_the_example():
    text = README.read_text()
    assert MARKER in text
    assert text.split(MARKER, 1)[1].split("```", 1)[0] == EXAMPLE


def test_a_mismatch_met_through_python_says_the_python_argument(demo_like):
    with pytest.raises(ManifestMismatch) as refused:
        folds("bu3dfe-full", "demo/merged.h5")  # the published manifest: the real dataset's
    said = str(refused.value)
    assert "the published manifest" in said
    assert "pass manifests=DIR" in said and "--manifests" not in said
    assert "--manifests DIR" in refused.value.for_cli()  # the command line says its option
