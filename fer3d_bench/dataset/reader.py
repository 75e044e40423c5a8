"""Random access to the merged HDF5 file, in plain Python (no torch).

The file is opened lazily and again in each process that uses it (h5py handles must not cross
a fork), so one `H5Dataset` can be handed to data-loader workers as it is. Whatever keeps a file
from being used (missing, not HDF5, truncated, without a dataset or attribute the schema requires,
a chunk failing its checksum) is a `MergedFileError` naming the file, never an h5py traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fer3d_bench.dataset.schema import SCHEMA_VERSION
from fer3d_bench.errors import DamagedData, MergedFileError
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
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        h5 = self._h5()
        version, major = str(h5.attrs["schema_version"]), SCHEMA_VERSION.split(".")[0]
        if version.split(".")[0] != major:
            problem = f"schema version {version}, this fer3d-bench reads {major}.x"
            raise MergedFileError(self.path, problem)
        self.schema_version = version
        self.classes: tuple[str, ...] = tuple(json.loads(h5.attrs["classes"]))
        self.fingerprint = str(h5.attrs["fingerprint"])
        self.column_names = tuple(sorted(name for name in h5 if name not in ("rgb", "depth")))
        self.checksums = all(h5[name].fletcher32 for name in h5)  # every dataset: 1.2.0 on
        self.sample_ids = self._text("sample_id")
        self.datasets = np.array(self._text("dataset"))
        self.subjects = np.array(self._text("subject"))
        self.labels = self._read("label").astype(np.int64)
        self.statuses, self.flags = self._quality(h5)
        self.flagged = self.statuses != OK  # aligned worse than its bar, kept
        self._index = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}

    def _quality(self, h5: h5py.File) -> tuple[np.ndarray, np.ndarray]:
        """Status and failed checks per sample; a 1.0 file keeps them in its alignment JSON."""
        if "status" in h5:
            return np.array(self._text("status")), np.array(self._text("flags"))
        rows = self.column("alignment")
        return (
            np.array([row.get("status", "ok") for row in rows]),
            np.array([row.get("flags") or "" for row in rows]),
        )

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = _open(self.path)
            self._pid = os.getpid()
            self._rgb = _required(self.path, self._file, "rgb")
            self._depth = _required(self.path, self._file, "depth")
        return self._file

    def _read(self, name: str) -> np.ndarray:
        """A whole column as stored."""
        values = _required(self.path, self._h5(), name)
        try:
            return values[()]
        except OSError as exc:
            raise _damaged(self.path, f"/{name}", values, exc) from None

    def _text(self, name: str) -> list[str]:
        """A text column decoded (bytes that are not UTF-8 mean damage a checksum did not see)."""
        try:
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in self._read(name)]
        except UnicodeDecodeError as exc:
            raise DamagedData(self.path, f"/{name}", f"is not UTF-8 ({exc.reason})") from None

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = int(index) % len(self)
        self._h5()
        values = self._rgb  # the one being read, for the error
        try:
            rgb = values[index]
            values = self._depth
            depth = values[index]
        except OSError as exc:
            where = f"sample {index} ({self.sample_ids[index]}) in {values.name}"
            raise _damaged(self.path, where, values, exc) from None
        return Sample(
            sample_id=self.sample_ids[index],
            dataset=str(self.datasets[index]),
            subject=str(self.subjects[index]),
            label=int(self.labels[index]),
            rgb=rgb,
            depth=depth,
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
        """A per-sample column by name (one of `column_names`); JSON columns (alignment,
        sources) are decoded."""
        values = _required(self.path, self._h5(), name)
        if not (values.dtype.kind in "SO" or h5py.check_string_dtype(values.dtype)):
            return self._read(name).tolist()
        strings = self._text(name)
        if name not in ("alignment", "sources"):
            return strings
        try:
            return [json.loads(s) for s in strings]
        except ValueError as exc:
            raise DamagedData(self.path, f"/{name}", f"is not valid JSON ({exc})") from None

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


def _open(path: Path) -> h5py.File:
    """The file opened read-only and holding the attributes every merged file has, or why
    not, in one line."""
    if not path.is_file():
        raise MergedFileError(path, "no such file" if not path.exists() else "not a file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        if not h5py.is_hdf5(path):
            raise MergedFileError(path, "not an HDF5 file") from None
        problem = f"truncated or damaged, HDF5 cannot open it ({_one_line(exc)})"
        raise MergedFileError(path, problem) from None
    missing = [key for key in ("schema_version", "classes", "fingerprint") if key not in h5.attrs]
    if missing:
        h5.close()
        problem = f"not a merged fer3d-bench file (no {', '.join(missing)} attribute)"
        raise MergedFileError(path, problem)
    return h5


def _required(path: Path, h5: h5py.File, name: str) -> h5py.Dataset:
    if name not in h5:
        raise MergedFileError(path, f"no /{name} dataset: not a complete merged file")
    return h5[name]


def _damaged(path: Path, where: str, values: h5py.Dataset, exc: OSError) -> DamagedData:
    failed = "fails its checksum" if values.fletcher32 else "cannot be read back"
    return DamagedData(path, where, f"{failed} (HDF5: {_one_line(exc)})")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
