"""The published results a run is shown beside, with their citations and conditions, from
`published.toml`.

Every table of the paper is there (`load_tables`, for `reproduce`); the rows of its comparison
tables are also shown in the report of any run of their protocol (`load_published`).

A published number keeps the digits its paper prints: the file is parsed with its decimals as
text (`printed`: "87.6", never "87.60"), and `accuracy` is the same number as a fraction, the
unit of every aggregate of ours. A row's conditions (`conditions = "<key>"`, a
[conditions.<key>] table of facts, each with its source) are what decides whether it compares
with a number of ours; a row without them states none ("not stated").
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from fer3d_bench.errors import ReportError
from fer3d_bench.records.conditions import NOT_STATED, SELECTIONS, UNITS, Conditions
from fer3d_bench.records.io import MAX_TOML_BYTES, RecordError, record_file, shown

PUBLISHED = Path(__file__).resolve().parents[1] / "published.toml"
NOT_REPRODUCED = "published, not reproduced by fer3d-bench"
KINDS = ("comparison", "ablation", "loss")
_TABLE_KEYS = {"title", "printed_in", "where", "protocol", "kind", "protocol_as_stated", "rows"}
_ROW_KEYS = {"method", "accuracy", "citation"}
_ROW_OPTIONAL = {"variant", "conditions"}
_COUNTS = ("repetitions", "folds", "epochs", "input_size")
_WORDS = ("weights", "test_seen", "data")
# each field of a [conditions.*] table: what its value may be
_FIELDS = {
    "unit": (f"one of {', '.join(repr(u) for u in (*UNITS, NOT_STATED))}", (*UNITS, NOT_STATED)),
    "epoch_selection": (
        f"one of {', '.join(repr(s) for s in (*SELECTIONS, NOT_STATED))}",
        (*SELECTIONS, NOT_STATED),
    ),
    **{name: ("a non-negative integer or a string", None) for name in _COUNTS},
    **{name: ("a string", None) for name in _WORDS},
}


def load_tables(path: Path = PUBLISHED) -> dict[str, dict]:
    """Table id ("IV", "cald3r-mend3s-6", ...) -> the table, each row's citation and
    conditions resolved."""
    path = Path(path)
    data = read_published(path)
    citations = _section(path, data, "citations")
    conditions = {
        key: _conditions(path, key, table)
        for key, table in _section(path, data, "conditions").items()
    }
    return {
        name: _table(path, name, table, citations, conditions)
        for name, table in _section(path, data, "tables").items()
    }


def load_published(path: Path = PUBLISHED) -> dict[str, list[dict]]:
    """Protocol -> the rows of the comparison tables on it (what every report shows)."""
    rows: dict[str, list[dict]] = {}
    for table in load_tables(path).values():
        if table["kind"] == "comparison":
            rows.setdefault(table["protocol"], []).extend(table["rows"])
    return dict(sorted(rows.items()))


def read_published(path: Path) -> dict:
    """The TOML document, its decimals as `Decimal` (so "87.6" stays 87.6 and "62.50" keeps
    its zero); refused in one line naming the file if it is no regular file of a TOML's size,
    or not TOML. (`records.io.read_toml` parses decimals as floats, which lose the printed
    digits: the bounded read is the same, `record_file` and at most MAX_TOML_BYTES.)"""
    try:
        record_file(path, what="published table", max_bytes=MAX_TOML_BYTES)
        with open(path, "rb") as stream:
            content = stream.read(MAX_TOML_BYTES + 1)
    except RecordError as error:
        raise ReportError(f"{path}: cannot read the published table ({error.problem})") from None
    except OSError as error:
        raise ReportError(f"{path}: cannot read the published table ({error})") from None
    if len(content) > MAX_TOML_BYTES:
        raise ReportError(f"{path}: larger than {MAX_TOML_BYTES:,} bytes; no published table is")
    try:
        return tomllib.loads(content.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as error:  # TOMLDecodeError is a ValueError
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ReportError(f"{path}: not valid TOML ({problem})") from None
    except RecursionError:
        raise ReportError(f"{path}: not valid TOML (nested too deep)") from None


def _section(path: Path, data: dict, name: str) -> dict:
    """The top-level table `name` ({} where absent), each entry a table."""
    section = data.get(name, {})
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise ReportError(f"{path}: [{name}] must hold tables ([{name}.<key>])")
    return section


def _conditions(path: Path, key: str, table: dict) -> Conditions:
    """A [conditions.<key>] table: each field `{ value = ..., source = "..." }`, checked."""
    where = f"{path}: [conditions.{key}]"
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ReportError(f"{where} has unknown keys {unknown}; known: {sorted(_FIELDS)}")
    values, sources = {}, {}
    for name, fact in table.items():
        if not isinstance(fact, dict) or set(fact) != {"value", "source"}:
            raise ReportError(
                f'{where}: {name} must be {{ value = ..., source = "..." }}, found {shown(fact)}'
            )
        value, source = fact["value"], fact["source"]
        if not isinstance(source, str) or not source.strip():
            raise ReportError(f"{where}: {name}.source must be a non-empty string")
        expected, choices = _FIELDS[name]
        if not _fits(name, value, choices):
            raise ReportError(f"{where}: {name}.value must be {expected}, found {shown(value)}")
        values[name], sources[name] = value, source
    return Conditions(**values, sources=sources)


def _fits(name: str, value: object, choices: tuple | None) -> bool:
    if choices is not None:
        return value in choices
    if name in _COUNTS and isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, str)


def _table(
    path: Path, name: str, table: dict, citations: dict, conditions: dict[str, Conditions]
) -> dict:
    missing = sorted(_TABLE_KEYS - table.keys())
    if missing:
        raise ReportError(f"{path}: table {name} lacks {missing}")
    if table["kind"] not in KINDS:
        raise ReportError(f"{path}: table {name} has kind {table['kind']!r}, not one of {KINDS}")
    if not isinstance(table["rows"], list) or not all(isinstance(r, dict) for r in table["rows"]):
        raise ReportError(f"{path}: table {name}: rows must be [[tables.{name}.rows]] tables")
    printed_in = _citation(path, name, table["printed_in"], citations)
    source = f"{table['where']} of {_short(printed_in)}"
    rows = [
        _row(path, f"table {name} row {k + 1}", row, citations, conditions)
        | {"table": name, "source": source, "protocol_as_stated": table["protocol_as_stated"]}
        for k, row in enumerate(table["rows"])
    ]
    return {**{k: v for k, v in table.items() if k != "rows"}, "source": source, "rows": rows}


def _row(
    path: Path, where: str, row: dict, citations: dict, conditions: dict[str, Conditions]
) -> dict:
    """One published row: its accuracy as printed and as a fraction, citation, conditions."""
    missing = sorted(_ROW_KEYS - row.keys())
    if missing:
        raise ReportError(f"{path}: {where} lacks {missing} (a row needs {sorted(_ROW_KEYS)})")
    unknown = sorted(row.keys() - _ROW_KEYS - _ROW_OPTIONAL)
    if unknown:
        raise ReportError(f"{path}: {where} has unknown keys {unknown}")
    for key in ("method", "citation", "variant", "conditions"):
        if key in row and not isinstance(row[key], str):
            raise ReportError(f"{path}: {where}: {key} must be a string, found {shown(row[key])}")
    printed = _printed(path, where, row["accuracy"])
    key = row.get("conditions")
    if key is not None and key not in conditions:
        known = sorted(conditions) or "none"
        raise ReportError(f"{path}: {where} names unknown conditions {key!r} (known: {known})")
    citation = _citation(path, where, row["citation"], citations)
    return {
        "method": row["method"],
        "accuracy": float(Decimal(printed) / 100),
        "printed": printed,
        "variant": row.get("variant"),
        "citation_key": row["citation"],
        "citation_text": citation_text(citation),
        "conditions": (conditions[key] if key is not None else Conditions()).to_json(),
    }


def _printed(path: Path, where: str, value: object) -> str:
    """The accuracy as the paper prints it, in percent: a decimal or an integer in [0, 100]."""
    number = isinstance(value, Decimal | int) and not isinstance(value, bool)
    if not number or (isinstance(value, Decimal) and not value.is_finite()):
        raise ReportError(f"{path}: {where}: accuracy must be a number, found {shown(value)}")
    if not 0 <= value <= 100:
        raise ReportError(f"{path}: {where}: accuracy {value} is not a percentage (0 to 100)")
    return str(value)


def _citation(path: Path, where: str, key: object, citations: dict) -> dict:
    if not isinstance(key, str) or key not in citations:
        raise ReportError(f"{path}: {where} cites unknown {shown(key)}")
    citation = citations[key]
    if not isinstance(citation.get("authors"), str):
        raise ReportError(f"{path}: [citations.{key}] needs authors (a string)")
    return citation


def _short(citation: dict) -> str:
    """ "Raimondo et al. 2024" from the first author's surname and the year."""
    first = citation["authors"].split(",")[0].split()[-1]
    return f"{first} et al. {citation.get('year', 'n.d.')}"


def citation_text(citation: dict) -> str:
    """Authors, title, venue, year and identifiers, as the cited paper's reference list gives."""
    parts = [
        citation["authors"],
        f'"{citation["title"]}"' if citation.get("title") else None,
        citation.get("venue"),
        str(citation["year"]) if citation.get("year") else None,
        f"arXiv:{citation['arxiv']}" if citation.get("arxiv") else None,
        f"doi:{citation['doi']}" if citation.get("doi") else None,
        f"code: {citation['code']}" if citation.get("code") else None,
    ]
    return ", ".join(part for part in parts if part)
