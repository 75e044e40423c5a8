"""The one reader of the JSON and TOML files other people hand us, and the one JSON writer.

Every failure is a `RecordError` naming the file: missing, unreadable or truncated, or of
another schema. JSON is written sorted, indented and atomically, so equal records give equal
bytes and a killed process never leaves half a file.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from fer3d_bench.errors import FileError
from fer3d_bench.io import atomic_path


class RecordError(FileError):
    """A record file cannot be used as it stands; the message names the file."""


class RecordNotFound(RecordError):
    """The file does not exist."""


class RecordDamaged(RecordError):
    """The file exists but is not valid JSON/TOML (truncated, edited, another format)."""


class SchemaMismatch(RecordError):
    """Valid JSON, but not the record (schema id or required fields) that was expected."""


def read_json(path: Path | str, schema: str | None = None, *, what: str = "record") -> dict:
    """The JSON object in `path`; with `schema`, it must carry exactly that schema id."""
    path = Path(path)
    if not path.is_file():
        raise RecordNotFound(path, f"{what} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordDamaged(path, f"unreadable or truncated JSON ({error})") from None
    if not isinstance(data, dict):
        raise SchemaMismatch(path, f"expected a JSON object, found {type(data).__name__}")
    if schema is not None and data.get("schema") != schema:
        raise SchemaMismatch(path, f"expected schema {schema!r}, found {data.get('schema')!r}")
    return data


def read_jsonl(path: Path | str) -> list[dict]:
    """One JSON object per non-empty line (metrics.jsonl); [] if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise RecordDamaged(path, f"line {number} is not valid JSON ({error})") from None
    return records


def read_toml(path: Path | str, *, what: str = "file") -> dict:
    """The TOML table in `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordNotFound(path, f"{what} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecordDamaged(path, f"unreadable {what} ({error})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RecordDamaged(path, f"not valid TOML ({error})") from None


def json_text(data: dict | list, *, strict: bool = False) -> str:
    """The canonical text of a record: sorted keys, one-space indent, final newline.

    `strict` (the report) refuses NaN and keeps non-ASCII text as it is; run and fold records
    keep the escaping they were first written with, so their bytes do not change.
    """
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=not strict, allow_nan=not strict)
    return text + "\n"


def write_json(path: Path | str, data: dict | list, *, strict: bool = False) -> Path:
    """Write `data` as canonical JSON (`json_text`), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data, strict=strict), encoding="utf-8")
    return Path(path)
