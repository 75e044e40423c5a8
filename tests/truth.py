"""Reading the generator's ground truth in the tests: its keys are main-file paths."""

from pathlib import PurePosixPath


def sample_id(dataset: str, key: str) -> str:
    """The sample id of a truth entry: `F0001/F0001_NE00WH_F3D.wrl` -> `bu3dfe:F0001_NE00`."""
    name = PurePosixPath(key).name
    if dataset == "bu3dfe":
        return f"bu3dfe:{name[:10]}"
    return f"{dataset}:{PurePosixPath(key).stem}"


def planted(truth: dict, dataset: str) -> dict[str, dict]:
    """Sample id -> the planted misalignment, for the scans of a mapped class."""
    return {
        sample_id(dataset, key): entry["planted"]
        for key, entry in truth[dataset].items()
        if entry.get("planted") and entry["class"] is not None
    }
