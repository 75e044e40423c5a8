"""Folders for the leaderboard tests, made without training (conftest.py makes them once).

Each starts as predictions of the published bu3dfe-legacy manifest scored by the real `score`
(2 repetitions x 3 folds, every n-th sample predicted wrong), so every number is the
toolkit's own; a "trained run" is such a folder whose report.json is then edited to say what a
trained run says (no submission, a dataset fingerprint, its conditions), since the leaderboard
reads report.json alone.
"""

import csv
import json
from pathlib import Path

from fer3d_bench.pipeline.score import score
from fer3d_bench.records.conditions import Conditions
from fer3d_bench.splits import MANIFESTS_DIR

PROTOCOL = "bu3dfe-legacy"
HOSTILE_MODEL = '<script>alert("model")</script> & <b>bold</b>'
HOSTILE_DESCRIPTION = "\"><img src=x onerror=alert(1)> it's <i>great</i>"
HOSTILE_FOLDER = 'team <b "x"> & <co>'


def write_predictions(path: Path, wrong_every: int) -> Path:
    """Repetitions 0-1, folds 0-2 of every test sample; each `wrong_every`-th sample of the
    manifest predicted as the next class."""
    manifest = MANIFESTS_DIR / PROTOCOL / "1.0.0.csv"
    with open(manifest, newline="") as file:
        samples = list(csv.DictReader(file))
    classes = sorted({s["label"] for s in samples})
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["repetition", "fold", "sample_id", "predicted"])
        for repetition in (0, 1):
            for k, sample in enumerate(samples):
                fold = int(sample[f"fold_r{repetition}"])
                if fold > 2:
                    continue
                label = sample["label"]
                if (k + repetition) % wrong_every == 0:
                    label = classes[(classes.index(label) + 1) % len(classes)]
                writer.writerow([repetition, fold, sample["sample_id"], label])
    return path


def scored(root: Path, name: str, wrong_every: int, **submission) -> Path:
    predictions = write_predictions(root / f"{wrong_every}.csv", wrong_every)
    score(PROTOCOL, predictions, root / name, submission=submission)
    return root / name


def as_trained(folder: Path, *, selection: str, fingerprint: str) -> Path:
    """`folder`'s report.json edited into a trained run's: no submission, a dataset, a
    configuration, and the conditions report.json records for its group."""
    path = folder / "report.json"
    report = json.loads(path.read_text())
    run = report["run"]
    run.pop("submission")
    run |= {"launcher": "local", "preset": "paper", "git_commit": "0123456789abcdef0123"}
    run["dataset"] = {"path": "merged.h5", "fingerprint": fingerprint}
    run["variants"] = {"full": {"epochs": 100, "model": {"input_size": 224}}}
    run["weights"] = {"pretrained": False}
    entry = run["protocols"][PROTOCOL]
    entry |= {"unit": "subject", "epoch_selection": selection, "manifest_published": True}
    for group in report["groups"]:
        group.pop("submitted", None)
        conditions = Conditions(
            unit="subject",
            epoch_selection=selection,
            repetitions=2,
            folds=3,
            epochs=100,
            input_size=224,
            weights="none (trained from scratch)",
            test_seen="no",
            data=entry["manifest_sha256"],
            published_manifest=True,
        )
        group["conditions"] = conditions.to_json()
    path.write_text(json.dumps(report, indent=1, sort_keys=True))
    return folder
