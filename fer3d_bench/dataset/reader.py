"""Random access to the merged HDF5 file, in plain Python (no torch).

The file is opened lazily and again in each process that uses it (h5py handles must not cross
a fork), so one `H5Dataset` can be handed to data-loader workers as it is. Whatever keeps a file
from being used (missing, not HDF5, truncated, without a dataset or attribute the schema requires,
a chunk failing its checksum) is a `MergedFileError` naming the file, never an h5py traceback.

This is the one place a merged file is opened for reading, so it is also where a file is held
to its schema before any pixel is read (`_Header.check`): every dataset is a plain dataset stored
in this file (no soft or external link, no virtual dataset, no external raw storage: each would
let another file's bytes stand in for ours, unseen by checksums and verify); a file whose schema
version promises per-chunk checksums has them on every dataset; every attribute and column has
the type, shape and length the schema gives it. Column values are checked where they are read
(labels within the classes, sample ids unique and named after their dataset, JSON columns
holding objects), each failure one error naming the file, the field and what was expected.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fer3d_bench.dataset.schema import (
    CHECKSUMS_SINCE,
    JSON_FIELDS,
    NUMBER_FIELDS,
    PIXELS,
    SCHEMA_VERSION,
    TEXT_FIELDS,
    parse_version,
    required_fields,
)
from fer3d_bench.errors import DamagedData, FileError, MergedFileError
from fer3d_bench.io import regular_file
from fer3d_bench.render.layout import LOW, OK
from fer3d_bench.taxonomy import CLASSES

ATTRIBUTES = ("schema_version", "classes", "fingerprint")  # what makes a file a merged file


@dataclass(frozen=True)
class Sample:
    sample_id: str
    dataset: str
    subject: str
    label: int
    rgb: np.ndarray  # (S, S, 3) uint8
    depth: np.ndarray  # (S, S) uint16


@dataclass(frozen=True)
class Storage:
    """How one dataset is stored, as `inspect` shows it."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: tuple[int, ...] | None
    compression: str | None
    fletcher32: bool


class H5Dataset:
    """Samples by index or by sample id, and index lists filtered by dataset, label or subject."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._header: _Header | None = None
        self._pid = -1
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        self._h5()
        header = self._header
        self.schema_version = header.schema_version
        self.classes: tuple[str, ...] = header.classes
        self.fingerprint = header.fingerprint
        self.column_names = tuple(sorted(name for name in header.names if name not in PIXELS))
        self.checksums = header.checksums
        self.datasets = np.array(self._names("dataset"))
        self.sample_ids = self._sample_ids()
        self.subjects = np.array(self._names("subject"))
        self.labels = self._labels()
        self.statuses, self.flags = self._quality()
        self.flagged = self.statuses != OK  # aligned worse than its bar, kept
        self._index = {sample_id: i for i, sample_id in enumerate(self.sample_ids)}

    def _quality(self) -> tuple[np.ndarray, np.ndarray]:
        """Status and failed checks per sample; a 1.0 file keeps them in its alignment JSON."""
        if "status" in self._header.names:
            statuses, flags = self._text("status"), self._text("flags")
        else:
            rows = self.column("alignment")
            statuses = [row.get("status", OK) for row in rows]
            flags = [row.get("flags") or "" for row in rows]
            for i, value in enumerate(flags):
                if not isinstance(value, str):
                    self._refuse("alignment", i, f"has flags {_shown(value)}", "text")
        for i, status in enumerate(statuses):
            if status not in (OK, LOW):
                field = "status" if "status" in self._header.names else "alignment"
                self._refuse(field, i, f"has status {_shown(status)}", f"{OK!r} or {LOW!r}")
        return np.array(statuses), np.array(flags)

    def _names(self, name: str) -> list[str]:
        """A text column in which every value must be a non-empty name."""
        values = self._text(name)
        for i, value in enumerate(values):
            if not value:
                self._refuse(name, i, "is empty", "a name")
        return values

    def _sample_ids(self) -> list[str]:
        """Sample ids: unique, each "DATASET:NAME" with DATASET its /dataset value (what the
        manifests match on and `inspect` titles pictures by)."""
        ids = self._text("sample_id")
        seen: dict[str, int] = {}
        for i, (sample_id, dataset) in enumerate(zip(ids, self.datasets, strict=True)):
            prefix, colon, rest = sample_id.partition(":")
            if prefix != dataset or not colon or not rest:
                expected = f"{dataset}:NAME (its /dataset value, a colon, a name)"
                self._refuse("sample_id", i, f"is {_shown(sample_id)}", expected)
            if sample_id in seen:
                problem = f"repeats row {seen[sample_id]}'s id {_shown(sample_id)}"
                self._refuse("sample_id", i, problem, "unique sample ids")
            seen[sample_id] = i
        return ids

    def _labels(self) -> np.ndarray:
        labels = self._read("label").astype(np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= len(self.classes)))
        if len(bad):
            expected = f"an index from 0 to {len(self.classes) - 1} into the classes attribute"
            self._refuse("label", int(bad[0]), f"is {labels[bad[0]]}", expected)
        return labels

    def _refuse(self, name: str, row: int, problem: str, expected: str):
        """Raise the one-line error for a bad value in row `row` of column `/name`, naming its
        sample once the sample ids are read and checked."""
        ids = getattr(self, "sample_ids", None)
        which = f"sample {row} ({ids[row]})" if ids else f"row {row}"
        raise MergedFileError(self.path, f"/{name} of {which} {problem}; expected {expected}")

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = None  # a handle from another process is not ours to close
            h5 = _open(self.path)
            try:
                header = _Header.check(self.path, h5)
                if self._header is not None and header != self._header:
                    problem = "changed since it was first opened: its schema, classes or layout"
                    raise MergedFileError(self.path, problem)
            except BaseException:
                h5.close()
                raise
            self._file, self._header, self._pid = h5, header, os.getpid()
            self._rgb, self._depth = h5["rgb"], h5["depth"]
        return self._file

    def _dataset(self, name: str) -> h5py.Dataset:
        h5 = self._h5()
        if name not in self._header.names:
            raise MergedFileError(self.path, f"no /{name} dataset: not a complete merged file")
        return h5[name]

    def _read(self, name: str) -> np.ndarray:
        """A whole column as stored."""
        values = self._dataset(name)
        try:
            return values[()]
        except OSError as exc:
            raise _damaged(self.path, f"/{name}", values, exc) from None
        except (TypeError, ValueError) as exc:  # a type h5py cannot hand to numpy
            problem = f"/{name} cannot be read as an array ({_one_line(exc)})"
            raise MergedFileError(self.path, problem) from None

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
        sources) are decoded, each value checked to be a JSON object."""
        values = self._dataset(name)
        if not _is_text(values.dtype):
            numbers = self._read(name)
            if name == "intensity" and len(bad := np.flatnonzero(numbers < -1)):
                self._refuse(name, int(bad[0]), f"is {numbers[bad[0]]}", "-1 (none) or more")
            return numbers.tolist()
        strings = self._text(name)
        if name not in JSON_FIELDS:
            return strings
        rows = []
        for i, text in enumerate(strings):
            try:
                row = json.loads(text)
            except ValueError as exc:
                raise DamagedData(self.path, f"/{name}", f"is not valid JSON ({exc})") from None
            except RecursionError:
                self._refuse(name, i, "is JSON nested too deeply", "a JSON object")
            if not isinstance(row, dict):
                self._refuse(name, i, f"is a JSON {type(row).__name__}", "a JSON object")
            rows.append(row)
        return rows

    def attribute(self, key: str) -> str | None:
        """A text attribute (e.g. fer3d_bench_version), checked to be text; None if absent."""
        h5 = self._h5()
        return _text_attribute(self.path, h5, key) if key in h5.attrs else None

    def attributes(self) -> dict:
        """Every attribute, text ones decoded; one that cannot be read is a named error."""
        h5 = self._h5()
        return {key: _attribute(self.path, h5, key) for key in sorted(h5.attrs)}

    def storage(self) -> list[Storage]:
        """How each dataset is stored (all checked on opening to be plain datasets)."""
        h5 = self._h5()
        return [
            Storage(name, d.shape, d.dtype, d.chunks, d.compression, d.fletcher32)
            for name, d in ((name, h5[name]) for name in self._header.names)
        ]

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


@dataclass(frozen=True)
class _Header:
    """What the file says of itself, checked against the schema from metadata alone (no
    dataset's values are read): attributes, and each dataset's kind, storage, type and shape."""

    schema_version: str
    classes: tuple[str, ...]
    fingerprint: str
    names: tuple[str, ...]  # the datasets, in the file's order
    samples: int
    checksums: bool

    @classmethod
    def check(cls, path: Path, h5: h5py.File) -> _Header:
        names = _plain_datasets(path, h5)
        missing = [key for key in ATTRIBUTES if key not in h5.attrs]
        if missing:
            problem = f"not a merged fer3d-bench file (no {', '.join(missing)} attribute)"
            raise MergedFileError(path, problem)
        text = _text_attribute(path, h5, "schema_version")
        version, major = parse_version(text), SCHEMA_VERSION.split(".")[0]
        if version is None:
            raise MergedFileError(
                path, f"attribute schema_version is {_shown(text)}; expected a version like 1.2.0"
            )
        if str(version[0]) != major:
            problem = f"schema version {text}, this fer3d-bench reads {major}.x"
            raise MergedFileError(path, problem)
        for name in required_fields(version):
            if name not in names:
                raise MergedFileError(path, f"no /{name} dataset: not a complete merged file")
        samples = _check_shapes(path, h5, names)
        checksums = all(h5[name].fletcher32 for name in names)
        if version >= CHECKSUMS_SINCE and not checksums:
            name = next(name for name in names if not h5[name].fletcher32)
            how = "contiguous" if h5[name].chunks is None else "chunked without Fletcher-32"
            raise MergedFileError(
                path,
                f"/{name} is stored {how}; expected checksummed chunks: a schema {text} file "
                "has a Fletcher-32 checksum on every chunk of every dataset",
            )
        return cls(text, _classes(path, h5), _fingerprint(path, h5), names, samples, checksums)


def _open(path: Path) -> h5py.File:
    """The file opened read-only, or why not, in one line. Only a regular file is opened: a
    FIFO or a device would block HDF5 forever."""
    try:
        regular_file(path, what="merged file")
    except FileError as exc:
        raise MergedFileError(path, exc.problem) from None
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if not h5py.is_hdf5(path):
            raise MergedFileError(path, "not an HDF5 file") from None
        problem = f"truncated or damaged, HDF5 cannot open it ({_one_line(exc)})"
        raise MergedFileError(path, problem) from None


def _plain_datasets(path: Path, h5: h5py.File) -> tuple[str, ...]:
    """The names at the file's root, each checked to be a dataset whose bytes lie in this file.

    A merged file is flat, so its root is its whole tree. Links are looked at without being
    followed (`getlink=True`): following an external link opens another file, which may be a
    FIFO. A virtual dataset or external raw storage reads another file's bytes just the same.
    """
    names = []
    for name in h5:
        try:
            link = h5.get(name, getlink=True)
        except (KeyError, TypeError, ValueError):  # a user-defined link kind h5py cannot show
            link = None
        if isinstance(link, h5py.ExternalLink):
            where = f"{link.filename}:{link.path}"
            raise MergedFileError(path, f"/{name} is an external link to {_shown(where)}; {_OWN}")
        if isinstance(link, h5py.SoftLink):
            raise MergedFileError(path, f"/{name} is a soft link to {_shown(link.path)}; {_OWN}")
        if not isinstance(link, h5py.HardLink):
            raise MergedFileError(path, f"/{name} is a link of an unknown kind; {_OWN}")
        try:
            item = h5[name]
            if not isinstance(item, h5py.Dataset):
                kind = "a group" if isinstance(item, h5py.Group) else "not a dataset"
                raise MergedFileError(path, f"/{name} is {kind}; {_OWN}")
            if item.is_virtual:
                raise MergedFileError(path, f"/{name} is a virtual dataset; {_OWN}")
            item.dtype  # noqa: B018  (h5py raises here for a type it cannot map to numpy)
            if item.external:
                files = ", ".join(_shown(str(entry[0])) for entry in item.external)
                problem = f"/{name} keeps its bytes in external storage ({files}); {_OWN}"
                raise MergedFileError(path, problem)
        except (OSError, TypeError, ValueError) as exc:
            raise MergedFileError(path, f"/{name} cannot be opened ({_one_line(exc)})") from None
        names.append(name)
    return tuple(names)


_OWN = "expected a plain dataset whose bytes lie in this file"


def _check_shapes(path: Path, h5: h5py.File, names: tuple[str, ...]) -> int:
    """The sample count, with the pixels (N, S, S, 3) uint8 and (N, S, S) uint16 and every
    other dataset one value per sample of the type the schema gives it."""
    rgb, depth = h5["rgb"], h5["depth"]
    shape = rgb.shape
    square = len(shape) == 4 and shape[3] == 3 and shape[1] == shape[2] > 0
    if not square or rgb.dtype != np.uint8:
        problem = f"/rgb is {shape} {rgb.dtype}; expected (samples, S, S, 3) uint8"
        raise MergedFileError(path, problem)
    samples, size = shape[0], shape[1]
    if samples == 0:
        raise MergedFileError(path, "/rgb holds no samples; expected at least one")
    if depth.shape != (samples, size, size) or depth.dtype.newbyteorder("=") != np.uint16:
        expected = f"({samples}, {size}, {size}) uint16 like /rgb"
        problem = f"/depth is {depth.shape} {depth.dtype}; expected {expected}"
        raise MergedFileError(path, problem)
    for name in names:
        values = h5[name]
        if name in PIXELS:
            continue
        if name in NUMBER_FIELDS or name in TEXT_FIELDS:
            kinds = NUMBER_FIELDS.get(name)
            fits = values.dtype.kind in kinds if kinds else _is_text(values.dtype)
            if values.shape != (samples,) or not fits:
                kind = {"iu": "integers", "f": "floats", None: "text"}[kinds]
                expected = f"({samples},) {kind}, one per sample as in /rgb"
                problem = f"/{name} is {values.shape} {values.dtype}; expected {expected}"
                raise MergedFileError(path, problem)
        elif not values.shape or values.shape[0] != samples:  # a column of a later minor version
            problem = f"/{name} is {values.shape}; expected one row per sample ({samples})"
            raise MergedFileError(path, problem)
    return samples


def _classes(path: Path, h5: h5py.File) -> tuple[str, ...]:
    """The class order, which must be the taxonomy's: labels index into it."""
    text = _text_attribute(path, h5, "classes")
    try:
        classes = json.loads(text)
    except (ValueError, RecursionError):
        classes = None
    if classes != list(CLASSES):
        raise MergedFileError(
            path,
            f"attribute classes is {_shown(text)}; expected the JSON list of the "
            f"{len(CLASSES)} classes {json.dumps(list(CLASSES))}",
        )
    return CLASSES


def _fingerprint(path: Path, h5: h5py.File) -> str:
    text = _text_attribute(path, h5, "fingerprint")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        problem = f"attribute fingerprint is {_shown(text)}; expected 64 hexadecimal digits"
        raise MergedFileError(path, problem)
    return text


def _attribute(path: Path, h5: h5py.File, key: str):
    """An attribute as h5py gives it (text decoded), or a named error if it cannot be read."""
    try:
        value = h5.attrs[key]
    except (OSError, TypeError, ValueError) as exc:
        problem = f"attribute {key} cannot be read ({_one_line(exc)})"
        raise MergedFileError(path, problem) from None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MergedFileError(path, f"attribute {key} is not UTF-8 text") from None
    return value


def _text_attribute(path: Path, h5: h5py.File, key: str) -> str:
    value = _attribute(path, h5, key)
    if not isinstance(value, str):
        kind = f"an array {value.shape}" if isinstance(value, np.ndarray) else _shown(value)
        raise MergedFileError(path, f"attribute {key} is {kind}; expected text")
    return value


def _is_text(dtype: np.dtype) -> bool:
    return dtype.kind == "S" or h5py.check_string_dtype(dtype) is not None


def _shown(value, limit: int = 80) -> str:
    """A value as it appears in a one-line message: quoted, escaped, cut at `limit`."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _damaged(path: Path, where: str, values: h5py.Dataset, exc: OSError) -> DamagedData:
    failed = "fails its checksum" if values.fletcher32 else "cannot be read back"
    return DamagedData(path, where, f"{failed} (HDF5: {_one_line(exc)})")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
