"""The one reader of the JSON and TOML files other people hand us, and the one JSON writer.

Every failure is a `RecordError` naming the file: missing, not a regular file, larger or nested
deeper than any record we write, unreadable or truncated, or of another schema. A record's
fields are read through `Fields`, which checks each value where it is read and names the field
and what was expected. JSON is written sorted, indented and atomically, so equal records give
equal bytes and a killed process never leaves half a file.

JSON has no NaN or infinity. Every JSON we write is strict: a non-finite number (a diverged
loss, a learning rate of nan) is written as `null`; the fold's status and reason say why it
diverged. Files written before 0.14, which hold the bare `NaN` token, still read (as NaN).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from fer3d_bench.errors import FileError
from fer3d_bench.io import atomic_path, regular_file

# The most a file of each kind may hold, far above any real one: run.json and result.json are
# kilobytes, a fold's result with every prediction and score of a whole data set ~2 MiB, the
# largest manifest ~2 MiB (dealt by sample, 100 repetitions); a metrics.jsonl line ~250 bytes
# an epoch; configuration, protocol and experiment files a few KiB. Above these a file is not
# ours, and is refused unread.
MAX_RECORD_BYTES = 64 * 2**20
MAX_LOG_BYTES = 16 * 2**20
MAX_TOML_BYTES = 4 * 2**20
# Our records nest 7 levels at most (a report's confusion matrix); the parsers recurse once a
# level and meet Python's recursion limit near 1,000 levels, and so would our own readers.
MAX_DEPTH = 64


class RecordError(FileError):
    """A record file cannot be used as it stands; the message names the file."""


class RecordNotFound(RecordError):
    """The file does not exist."""


class RecordDamaged(RecordError):
    """The file exists but is not valid JSON/TOML (truncated, edited, another format), or is
    not a regular file of a record's size."""


class SchemaMismatch(RecordError):
    """Valid JSON, but not the record (schema id or required fields) that was expected."""


def record_file(path: Path | str, *, what: str, max_bytes: int) -> Path:
    """`path`, checked to be a regular file of at most `max_bytes` (`io.regular_file`): a FIFO
    would block its reader forever. RecordNotFound if it does not exist, else RecordDamaged."""
    path = Path(path)
    if not path.exists():  # a dangling link too: there is nothing to read
        raise RecordNotFound(path, f"{what} not found")
    try:
        return regular_file(path, what=what, max_bytes=max_bytes)
    except FileError as error:
        raise RecordDamaged(path, error.problem) from None


def _text(path: Path, what: str, max_bytes: int) -> str:
    record_file(path, what=what, max_bytes=max_bytes)
    try:
        with open(path, "rb") as stream:
            content = stream.read(max_bytes + 1)  # the file may have grown since it was checked
        if len(content) > max_bytes:
            raise RecordDamaged(path, f"{what} is larger than {max_bytes:,} bytes; refused")
        return content.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecordDamaged(path, f"unreadable {what} ({error})") from None


def _parsed(path: Path, parse: Callable[[str], Any], text: str, invalid: str) -> Any:
    """`parse(text)`, every way it fails a RecordDamaged beginning with `invalid`: a syntax
    error, an integer of more digits than Python converts (a ValueError too), or nesting deeper
    than MAX_DEPTH (which the parsers' recursion may not even reach the end of)."""
    try:
        data = parse(text)
        deep = _too_deep(data)
    except RecursionError:
        deep = True
    except ValueError as error:  # json.JSONDecodeError and tomllib.TOMLDecodeError among them
        raise RecordDamaged(path, f"{invalid} ({error})") from None
    if deep:
        problem = f"nested deeper than {MAX_DEPTH} levels; no record is"
        raise RecordDamaged(path, f"{invalid} ({problem})")
    return data


def _too_deep(data: Any) -> bool:
    """Whether `data` nests objects and lists deeper than MAX_DEPTH (counted without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth > MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in value)
    return False


def read_json(
    path: Path | str,
    schema: str | None = None,
    *,
    what: str = "record",
    max_bytes: int = MAX_RECORD_BYTES,
) -> dict:
    """The JSON object in `path`; with `schema`, it must carry exactly that schema id."""
    path = Path(path)
    data = _parsed(path, json.loads, _text(path, what, max_bytes), "unreadable or truncated JSON")
    if not isinstance(data, dict):
        raise SchemaMismatch(path, f"expected a JSON object, found {type(data).__name__}")
    if schema is not None and data.get("schema") != schema:
        raise SchemaMismatch(path, f"expected schema {schema!r}, found {data.get('schema')!r}")
    return data


def read_jsonl(path: Path | str, *, max_bytes: int = MAX_LOG_BYTES) -> list[dict]:
    """One JSON object per non-empty line (metrics.jsonl); [] if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(_text(path, "log", max_bytes).splitlines(), 1):
        if not line.strip():
            continue
        record = _parsed(path, json.loads, line, f"line {number} is not valid JSON")
        if not isinstance(record, dict):
            raise RecordDamaged(path, f"line {number} is not a JSON object, found {shown(record)}")
        records.append(record)
    return records


def read_toml(path: Path | str, *, what: str = "file", max_bytes: int = MAX_TOML_BYTES) -> dict:
    """The TOML table in `path`."""
    path = Path(path)
    return _parsed(path, tomllib.loads, _text(path, what, max_bytes), "not valid TOML")


def json_text(data: dict | list, *, strict: bool = False) -> str:
    """The canonical text of a record: sorted keys, one-space indent, final newline.

    Every record is strict JSON, non-finite numbers written as null (module docstring).
    `strict` (the report) keeps non-ASCII text as it is; run and fold records keep the
    escaping they were first written with, so their bytes do not change.
    """
    return _dumps(data, indent=1, sort_keys=True, ensure_ascii=not strict) + "\n"


def json_line(record: dict) -> str:
    """One line of a JSON log (metrics.jsonl): sorted keys, non-finite numbers as null."""
    return _dumps(record, sort_keys=True) + "\n"


def _dumps(data: Any, **options: Any) -> str:
    try:
        return json.dumps(data, allow_nan=False, **options)
    except ValueError:  # a NaN or an infinity somewhere: the rare record that needs the copy
        return json.dumps(_finite(data), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path | str, data: dict | list, *, strict: bool = False) -> Path:
    """Write `data` as canonical JSON (`json_text`), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data, strict=strict), encoding="utf-8")
    return Path(path)


# ---------------------------------------------------------------- reading a record's fields

Check = Callable[[Any], bool]


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An integer or a float; NaN included (a diverged loss read from a file before 0.14)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_str(value: object) -> bool:
    return isinstance(value, str)


def is_dict(value: object) -> bool:
    return isinstance(value, dict)


def nullable(check: Check) -> Check:
    return lambda value: value is None or check(value)


def list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


def dict_of(check: Check) -> Check:
    return lambda value: isinstance(value, dict) and all(check(v) for v in value.values())


def shown(value: object) -> str:
    """`value` as a message shows it: its repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class Fields:
    """One JSON object of a record, read key by key.

    Each value is checked where it is read; a problem is a SchemaMismatch naming the file, the
    field (`where` is the object's place in the file: `job`, `groups[0].aggregate`) and what was
    expected: "PATH: job.fold must be an integer >= 0, found -1". A key may be `optional`: then
    its absence gives `default`. `null=True` lets a value be null.
    """

    def __init__(self, path: Path | str, data: object, where: str = ""):
        self.path, self.where = Path(path), where
        if not isinstance(data, dict):
            place = where or "the record"
            raise SchemaMismatch(self.path, f"{place} must be an object, found {shown(data)}")
        self.data: dict = data

    def at(self, key: str) -> str:
        """The place of `key` in the file, as messages name it."""
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str):
        raise SchemaMismatch(self.path, f"{self.at(key)} {problem}")

    def get(
        self,
        key: str,
        check: Check | None = None,
        expected: str = "",
        *,
        optional: bool = False,
        default: Any = None,
    ) -> Any:
        """The value of `key`, which must pass `check` (described by `expected`)."""
        if key not in self.data:
            if optional:
                return default
            raise SchemaMismatch(self.path, f"{self.where or 'the record'} lacks {key!r}")
        value = self.data[key]
        if check is not None and not check(value):
            self.fail(key, f"must be {expected}, found {shown(value)}")
        return value

    def integer(self, key: str, *, min: int | None = None, null: bool = False, **absent) -> Any:
        def check(v):
            return is_int(v) and (min is None or v >= min)

        expected = "an integer" + ("" if min is None else f" >= {min}")
        return self._typed(key, check, expected, null, absent)

    def number(self, key: str, *, null: bool = False, **absent) -> Any:
        return self._typed(key, is_number, "a number", null, absent)

    def string(self, key: str, *, null: bool = False, choices=None, **absent) -> Any:
        if choices is not None:
            expected = "one of " + ", ".join(repr(c) for c in choices)
            return self._typed(key, lambda v: v in choices, expected, null, absent)
        return self._typed(key, is_str, "a string", null, absent)

    def boolean(self, key: str, **absent) -> Any:
        return self._typed(key, lambda v: isinstance(v, bool), "true or false", False, absent)

    def object(self, key: str, *, null: bool = False, **absent) -> Any:
        return self._typed(key, is_dict, "an object", null, absent)

    def array(
        self, key: str, item: Check | None = None, of: str = "", *, null: bool = False, **absent
    ) -> Any:
        """A list; with `item`, each element passes it (`of` says what they must be)."""
        check = list_of(item) if item else lambda v: isinstance(v, list)
        return self._typed(key, check, f"a list{f' of {of}' if of else ''}", null, absent)

    def nested(self, key: str, *, null: bool = False) -> Fields | None:
        """The object `key` as Fields of its own, or None where it is absent (or null, where
        `null` allows it)."""
        value = self.object(key, null=null, optional=True)
        return None if value is None else Fields(self.path, value, self.at(key))

    def each(self, key: str, read: Callable[[object, Path, str], Any]) -> list:
        """`read(element, path, where)` of each element of the list `key`."""
        values = self.array(key)
        return [read(v, self.path, f"{self.at(key)}[{k}]") for k, v in enumerate(values)]

    def extra(self, cls: type, also: tuple[str, ...] = ()) -> dict:
        """The keys the dataclass `cls` does not know (nor `also`): another version's, kept."""
        known = {f.name for f in fields(cls)} | set(also)
        return {k: v for k, v in self.data.items() if k not in known}

    def _typed(self, key: str, check: Check, expected: str, null: bool, absent: dict) -> Any:
        if null:
            check, expected = nullable(check), f"{expected} or null"
        return self.get(key, check, expected, **absent)
