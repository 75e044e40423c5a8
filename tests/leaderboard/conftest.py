"""The leaderboard tests' folders (leaderboard_folders.py says how they are made)."""

import shutil
from pathlib import Path

import pytest
from leaderboard_folders import (
    HOSTILE_DESCRIPTION,
    HOSTILE_FOLDER,
    HOSTILE_MODEL,
    as_trained,
    scored,
)


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict[str, Path]:
    """name -> a folder, made once (read-only for the tests: copy before changing one):
    - reference: a trained run, the last epoch reported (every 5th sample wrong);
    - optimistic: a trained run whose epoch was chosen on the test fold (every 3rd wrong);
    - submission: scored predictions of a hostile model name (every 4th wrong), in a folder
      whose name is hostile too."""
    root = tmp_path_factory.mktemp("leaderboard")
    reference = as_trained(scored(root, "reference", 5), selection="last", fingerprint="f" * 64)
    optimistic = as_trained(
        scored(root, "optimistic", 3), selection="best-test", fingerprint="e" * 64
    )
    submission = scored(
        root,
        HOSTILE_FOLDER,
        4,
        model=HOSTILE_MODEL,
        description=HOSTILE_DESCRIPTION,
        url="javascript:alert(1)",
    )
    return {"reference": reference, "optimistic": optimistic, "submission": submission}


@pytest.fixture
def folders(made, tmp_path) -> dict[str, Path]:
    """Copies of the made folders in this test's own tmp_path, free to change."""
    return {name: Path(shutil.copytree(path, tmp_path / path.name)) for name, path in made.items()}
