"""Random access to the merged HDF5 file, in plain Python (no torch).

The file is opened lazily and again in each process that uses it (h5py handles must not cross
a fork), so one `H5Dataset` can be handed to data-loader workers as it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fer3d_bench.dataset.schema import SCHEMA_VERSION
from fer3d_bench.errors import Fer3dError
from fer3d_bench.render.layout import OK


@dataclass(frozen=True)
class Sample:
    sample_id: str
    dataset: str
    subject: str
    label: int
    rgb: np.ndarray  # (S, S, 3) uint8
    depth: np.ndarray  # (S, S) uint16


class H5Dataset:
    """Samples by index or by sample id, and index lists filtered by dataset, label or subject."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid = -1
        h5 = self._h5()
        version = str(h5.attrs.get("schema_version", "0"))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise Fer3dError(
                f"{self.path}: schema version {version}, this fer3d-bench reads "
                f"{SCHEMA_VERSION.split('.')[0]}.x"
            )
        self.schema_version = version
        self.classes: tuple[str, ...] = tuple(json.loads(h5.attrs["classes"]))
        self.fingerprint = str(h5.attrs["fingerprint"])
        self.sample_ids = _strings(h5["sample_id"])
        self.datasets = np.array(_strings(h5["dataset"]))
        self.subjects = np.array(_strings(h5["subject"]))
        self.labels = h5["label"][()].astype(np.int64)
        self.statuses, self.flags = self._quality(h5)
        self.flagged = self.statuses != OK  # aligned worse than its bar, kept
        self._index = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}

    def _quality(self, h5: h5py.File) -> tuple[np.ndarray, np.ndarray]:
        """Status and failed checks per sample; a 1.0 file keeps them in its alignment JSON."""
        if "status" in h5:
            return np.array(_strings(h5["status"])), np.array(_strings(h5["flags"]))
        rows = [json.loads(s) for s in _strings(h5["alignment"])]
        return (
            np.array([row.get("status", "ok") for row in rows]),
            np.array([row.get("flags") or "" for row in rows]),
        )

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except (OSError, FileNotFoundError) as exc:
                raise Fer3dError(f"{self.path}: cannot open as HDF5 ({exc})") from None
            self._pid = os.getpid()
            self._rgb, self._depth = self._file["rgb"], self._file["depth"]
        return self._file

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        self._h5()
        return Sample(
            sample_id=self.sample_ids[index],
            dataset=str(self.datasets[index]),
            subject=str(self.subjects[index]),
            label=int(self.labels[index]),
            rgb=self._rgb[index],
            depth=self._depth[index],
        )

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._index

    def index_of(self, sample_id: str) -> int:
        try:
            return self._index[sample_id]
        except KeyError:
            raise KeyError(f"{sample_id!r} is not in {self.path}") from None

    def by_id(self, sample_id: str) -> Sample:
        return self[self.index_of(sample_id)]

    def indices(
        self,
        dataset: str | None = None,
        label: str | int | None = None,
        subject: str | None = None,
        status: str | None = None,
    ) -> np.ndarray:
        """Indices of the samples that match every filter given (`status`: "ok" or
        "low-quality")."""
        keep = np.ones(len(self), dtype=bool)
        if dataset is not None:
            keep &= self.datasets == dataset
        if label is not None:
            keep &= self.labels == (self.classes.index(label) if isinstance(label, str) else label)
        if subject is not None:
            keep &= self.subjects == subject
        if status is not None:
            keep &= self.statuses == status
        return np.flatnonzero(keep)

    def column(self, name: str) -> list:
        """A per-sample column by name; JSON columns (alignment, sources) are decoded."""
        values = self._h5()[name]
        if values.dtype.kind in "SO" or h5py.check_string_dtype(values.dtype):
            strings = _strings(values)
            return [json.loads(s) for s in strings] if name in ("alignment", "sources") else strings
        return values[()].tolist()

    def attributes(self) -> dict:
        return {key: self._h5().attrs[key] for key in sorted(self._h5().attrs)}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> H5Dataset:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_file=None, _pid=-1, _rgb=None, _depth=None)
        return state


def _strings(values: h5py.Dataset) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values[()]]
