"""The best trial as a `--config` TOML file, with what it was tuned on in its `[tuned]` table.

`fer3d-bench evaluate --config FILE` reads it as any config file: `preset`, the tuned keys at
the top level and in `[model]` / `[loss]` tables; `[tuned]` is provenance, recorded in run.json
and printed in the report. The study's COMPLETE trials are summed up in `study_sha256`, the
sha256 of the canonical JSON (sorted keys, no spaces) of their number, params and value, sorted
by number: two copies of a study that hash alike hold the same search. The best trial is the one
of highest validation accuracy, the earliest of those on a tie (a small validation set ties
often), so that every worker writes the same file.

tomllib only reads, and the file holds only flat tables of strings, numbers and booleans, so it
is written here, and read back before it is put in place.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from pathlib import Path

from optuna.trial import FrozenTrial

from fer3d_bench.io import atomic_path
from fer3d_bench.tune import TuneError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def best_trial(complete: list[FrozenTrial]) -> FrozenTrial:
    """The COMPLETE trial of highest value; the lowest number among equals."""
    return max(complete, key=lambda t: (t.value, -t.number))


def study_sha256(complete: list[FrozenTrial]) -> str:
    rows = [
        {"number": t.number, "params": t.params, "value": t.value}
        for t in sorted(complete, key=lambda t: t.number)
    ]
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_document(preset: str, params: dict, tuned: dict) -> dict:
    """{"preset", top-level keys, "model": {...}, "loss": {...}, "tuned": {...}}."""
    document: dict = {"preset": preset}
    for key, value in sorted(params.items()):
        table, dot, name = key.partition(".")
        if dot:
            document.setdefault(table, {})[name] = value
        else:
            document[key] = value
    return document | {"tuned": tuned}


def toml_text(document: dict, header: str = "") -> str:
    """TOML for top-level scalars followed by tables of scalars."""
    lines = [f"# {line}" for line in header.splitlines()]
    tables = {k: v for k, v in document.items() if isinstance(v, dict)}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in document.items() if k not in tables]
    for name, table in tables.items():
        lines += ["", f"[{_key(name)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest round-tripping form: 0.001, 1e-05
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    raise TuneError(f"cannot write {value!r} ({type(value).__name__}) into a TOML config file")


def write_config(path: Path, document: dict, header: str = "") -> Path:
    """Write `document` atomically to `path`, refused if it would not read back equal."""
    text = toml_text(document, header)
    if tomllib.loads(text) != document:
        raise TuneError(f"{path}: the TOML written would not read back as written")
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
