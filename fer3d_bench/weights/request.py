"""What a user asked for as pretrained backbone weights, carried whole from the command line to
the loader (no torch here: a run is planned with it on a login node)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PretrainedWeights:
    """--backbone-weights and what reading it may accept.

    `path` None trains from scratch. A whole-model pickle runs code when read, so it is only
    accepted with `trust_pickle`; a known file is refused for another backbone than the one it
    was made for unless `allow_architecture_mismatch` (warned about, and recorded).
    """

    path: Path | None = None
    trust_pickle: bool = False
    allow_architecture_mismatch: bool = False

    def __post_init__(self) -> None:
        if self.path is not None and not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
