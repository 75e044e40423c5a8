"""The t-SNE of a fold's test embeddings: its coordinates, its figure, and refused embeddings.

The run folder is the checked-in 0.7.0 one (no embeddings), given embeddings here as a fold job
writes them (`write_embeddings`): 12 test samples a fold, six classes.
"""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fer3d_bench.records.embeddings import (
    EMBEDDINGS,
    first_embedded,
    read_embeddings,
    write_embeddings,
)
from fer3d_bench.records.io import RecordError
from fer3d_bench.records.result import read_result
from fer3d_bench.report import write_report
from fer3d_bench.report.figures import tsne_coordinates

FIXTURE = Path(__file__).parents[1] / "data" / "run-0.7.0"
FOLDS = ("bu3dfe-legacy/0/0", "bu3dfe-legacy/0/1")
TSNE = "figures/full_bu3dfe-legacy_tsne.png"
PNG = b"\x89PNG\r\n\x1a\n"


def clusters(per_class: int, classes: int, dims: int = 32, seed: int = 0):
    """(points, labels): `classes` Gaussian clusters of unit spread, centres 20 apart."""
    rng = np.random.default_rng(seed)
    centres = 20.0 * np.eye(classes, dims)
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(size=(len(labels), dims)), labels


def neighbour_agreement(points: np.ndarray, labels: np.ndarray) -> float:
    """Share of points whose nearest other point (in the plane) has the same label."""
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return float(np.mean(labels[distances.argmin(1)] == labels))


@pytest.fixture
def run(tmp_path):
    folder = shutil.copytree(
        FIXTURE, tmp_path / "box" / "run", ignore=shutil.ignore_patterns("*.py")
    )
    for name in ("report.json", "report.md"):
        (folder / name).unlink()
    return folder


def give_embeddings(run: Path, folds=FOLDS) -> None:
    """Embeddings for the folds' test samples, one cluster per true class, as a job writes them."""
    for k, fold in enumerate(folds):
        path = run / fold / "result.json"
        data = json.loads(path.read_text())
        classes = data["classes"]
        points, _ = clusters(1, len(classes), dims=16, seed=k)
        rng = np.random.default_rng(10 + k)
        vectors = {
            sample: points[classes.index(p["true"])] + 0.3 * rng.normal(size=16)
            for sample, p in data["predictions"].items()
        }
        data["embeddings"] = write_embeddings(path.parent, vectors)
        path.write_text(json.dumps(data))


def edit_block(result: Path, **changes) -> None:
    data = json.loads(result.read_text())
    data["embeddings"].update(changes)
    result.write_text(json.dumps(data))


def test_tsne_coordinates_are_the_same_for_a_seed_in_this_and_a_fresh_process(tmp_path):
    points, _ = clusters(10, 3)
    first = tsne_coordinates(points, seed=0)
    assert first.shape == (30, 2)
    np.testing.assert_array_equal(first, tsne_coordinates(points, seed=0))
    np.save(tmp_path / "points.npy", points)
    script = (
        "import sys, numpy as np; from fer3d_bench.report.figures import tsne_coordinates; "
        "np.save(sys.argv[2], tsne_coordinates(np.load(sys.argv[1]), seed=0))"
    )
    subprocess.run(
        [sys.executable, "-c", script, tmp_path / "points.npy", tmp_path / "plane.npy"],
        check=True,
        env=dict(os.environ, OMP_NUM_THREADS="2"),
        cwd=Path(__file__).parents[2],  # this checkout first on the path
    )
    np.testing.assert_array_equal(np.load(tmp_path / "plane.npy"), first)


def test_with_pca_initialisation_a_small_set_does_not_depend_on_the_seed():
    """The seed only reaches PCA's randomized solver, which sets of 500 rows or fewer never get
    (tsne_coordinates): the figure is a function of the embeddings alone. Should scikit-learn
    ever draw on the seed for these, this fails, and the docstring must say so."""
    points, _ = clusters(10, 3)
    np.testing.assert_array_equal(
        tsne_coordinates(points, seed=0), tsne_coordinates(points, seed=1)
    )


def test_tsne_keeps_well_separated_clusters_apart_and_random_labels_mixed():
    points, labels = clusters(20, 3)
    plane = tsne_coordinates(points.astype(np.float16))  # as stored
    assert neighbour_agreement(plane, labels) > 0.9
    shuffled = np.random.default_rng(1).permutation(labels)  # labels that mean nothing
    assert neighbour_agreement(plane, shuffled) < 0.6  # about 1/3 by chance


def test_too_few_distinct_rows_are_placed_at_the_origin_instead_of_crashing_tsne():
    np.testing.assert_array_equal(tsne_coordinates(np.ones((5, 8))), np.zeros((5, 2)))
    np.testing.assert_array_equal(tsne_coordinates(np.ones((1, 8))), np.zeros((1, 2)))
    assert tsne_coordinates(np.eye(2, 8)).shape == (2, 2)  # perplexity 1, below n = 2


def test_embeddings_round_trip_in_sorted_sample_order(tmp_path):
    vectors = {"b": np.full(4, 2.0), "a": np.full(4, 1.0), "c": np.full(4, 3.0)}
    block = write_embeddings(tmp_path, vectors)
    content = (tmp_path / EMBEDDINGS).read_bytes()
    assert block == {
        "file": EMBEDDINGS,
        "sha256": hashlib.sha256(content).hexdigest(),
        "shape": [3, 4],
        "dtype": "float16",
        "order": "sorted sample ids",
    }
    stored = np.load(tmp_path / EMBEDDINGS, allow_pickle=False)
    assert stored.dtype == np.float16
    np.testing.assert_array_equal(stored[:, 0], [1.0, 2.0, 3.0])  # a, b, c
    assert sorted(p.name for p in tmp_path.iterdir()) == [EMBEDDINGS]  # no temporary left


def test_the_first_finished_fold_with_embeddings_is_drawn(run):
    give_embeddings(run, folds=FOLDS[1:])
    results = [read_result(run / fold / "result.json") for fold in FOLDS]
    assert first_embedded(results).position == (0, 1)  # 0/0 stored none
    give_embeddings(run)
    results = [read_result(run / fold / "result.json") for fold in FOLDS]
    assert first_embedded(reversed(results)).position == (0, 0)
    assert first_embedded([replace(results[0], status="failed")]) is None


def test_a_group_with_embeddings_gets_a_tsne_figure_with_the_same_bytes_every_time(run):
    give_embeddings(run)
    paths = write_report(run)
    assert TSNE in paths.report.figures and TSNE in paths.report.groups[0].figures
    assert f"- [{TSNE}]({TSNE})" in paths.markdown.read_text()
    first = {p.name: p.read_bytes() for p in paths.figures}
    assert first[Path(TSNE).name].startswith(PNG)
    again = write_report(run)
    assert {p.name: p.read_bytes() for p in again.figures} == first


def test_a_group_without_embeddings_gets_no_tsne_figure(run):
    paths = write_report(run)
    assert not any(name.endswith("_tsne.png") for name in paths.report.figures)
    assert not (run / TSNE).exists()
    assert "_tsne.png" not in paths.markdown.read_text()


def _changed_byte(path: Path, result: Path) -> None:
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x01
    path.write_bytes(bytes(content))


def _same_sha(path: Path, result: Path) -> None:
    """Record the file's new sha256 too, so that only its content is left to refuse it."""
    edit_block(result, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


class _Planted:
    """Unpickling this creates the file named: proof that something was unpickled."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return open, (self.target, "w")


def _object_array(path: Path, result: Path) -> None:
    planted = np.empty(12, dtype=object)
    planted[:] = [_Planted(path.parent / "unpickled") for _ in range(12)]
    with open(path, "wb") as f:
        np.save(f, planted, allow_pickle=True)
    _same_sha(path, result)


def _plain_pickle(path: Path, result: Path) -> None:
    path.write_bytes(pickle.dumps(_Planted(path.parent / "unpickled")))
    _same_sha(path, result)


def _float32(path: Path, result: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros((12, 16), dtype=np.float32))
    _same_sha(path, result)


def _too_few_rows(path: Path, result: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros((11, 16), dtype=np.float16))
    edit_block(result, shape=[11, 16], sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def _outside(path: Path, result: Path) -> None:
    shutil.copy(path, path.parents[2] / "x.npy")  # a valid file: only its place is wrong
    edit_block(result, file="../../x.npy")


def _link_out(path: Path, result: Path) -> None:
    outside = path.parents[4] / "elsewhere.npy"
    shutil.move(path, outside)
    path.symlink_to(outside)


def _missing(path: Path, result: Path) -> None:
    path.unlink()


REFUSALS = {
    "one byte changed": (_changed_byte, EMBEDDINGS, "sha256 differs"),
    "pickled object array": (_object_array, EMBEDDINGS, "not a plain .npy array"),
    "plain pickle": (_plain_pickle, EMBEDDINGS, "not a plain .npy array"),
    "float32": (_float32, EMBEDDINGS, r"holds float32 \[12, 16\], not the recorded float16"),
    "rows for other samples": (_too_few_rows, "result.json", "11 rows for 12 predictions"),
    "file outside the fold": (_outside, "result.json", r"'\.\./\.\./x\.npy' lies outside"),
    "link out of the fold": (_link_out, "result.json", "lies outside the fold folder"),
    "missing": (_missing, EMBEDDINGS, "embeddings not found"),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_damaged_or_hostile_embeddings_are_refused_naming_the_file(run, name):
    change, named, problem = REFUSALS[name]
    give_embeddings(run)
    result = run / FOLDS[0] / "result.json"
    change(result.parent / EMBEDDINGS, result)
    with pytest.raises(RecordError, match=problem) as error:
        write_report(run)
    assert str(result.parent / named) in str(error.value)
    assert not (result.parent / "unpickled").exists()  # nothing was unpickled
    assert not (run / "report.md").exists() and not (run / TSNE).exists()


@pytest.mark.parametrize(
    "change",
    [{"dtype": "float32"}, {"order": "as trained"}, {"shape": [12]}, {"sha256": "x"}, {"file": 3}],
)
def test_an_embeddings_block_of_another_form_is_refused(run, change):
    give_embeddings(run)
    result = run / FOLDS[0] / "result.json"
    edit_block(result, **change)
    with pytest.raises(RecordError, match="its 'embeddings' block needs") as error:
        read_embeddings(read_result(result), result)
    assert str(result) in str(error.value)
