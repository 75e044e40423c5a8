"""The published results a run is shown beside, with their citations, from `published.toml`.

Every table of the paper is there (`load_tables`, for `reproduce`); the rows of its comparison
tables are also shown in the report of any run of their protocol (`load_published`).
"""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.errors import ReportError
from fer3d_bench.records.io import RecordError, read_toml

PUBLISHED = Path(__file__).resolve().parents[1] / "published.toml"
NOT_REPRODUCED = "published, not reproduced by fer3d-bench"
KINDS = ("comparison", "ablation", "loss")
_TABLE_KEYS = {"title", "printed_in", "where", "protocol", "kind", "protocol_as_stated", "rows"}
_ROW_KEYS = {"method", "accuracy", "citation"}


def load_tables(path: Path = PUBLISHED) -> dict[str, dict]:
    """Table id ("IV", "cald3r-mend3s-6", ...) -> the table, each row's citation resolved."""
    try:
        data = read_toml(path, what="published table")
    except RecordError as error:
        raise ReportError(f"{path}: cannot read the published table ({error.problem})") from None
    citations = data.get("citations", {})
    return {
        name: _table(path, name, table, citations) for name, table in data.get("tables", {}).items()
    }


def load_published(path: Path = PUBLISHED) -> dict[str, list[dict]]:
    """Protocol -> the rows of the comparison tables on it (what every report shows)."""
    rows: dict[str, list[dict]] = {}
    for table in load_tables(path).values():
        if table["kind"] == "comparison":
            rows.setdefault(table["protocol"], []).extend(table["rows"])
    return dict(sorted(rows.items()))


def _table(path: Path, name: str, table: dict, citations: dict) -> dict:
    missing = sorted(_TABLE_KEYS - table.keys())
    if missing:
        raise ReportError(f"{path}: table {name} lacks {missing}")
    if table["kind"] not in KINDS:
        raise ReportError(f"{path}: table {name} has kind {table['kind']!r}, not one of {KINDS}")
    printed = _citation(path, name, table["printed_in"], citations)
    source = f"{table['where']} of {_short(printed)}"
    rows = []
    for row in table["rows"]:
        if not row.keys() >= _ROW_KEYS:
            raise ReportError(f"{path}: a row of table {name} needs {sorted(_ROW_KEYS)}")
        citation = _citation(path, name, row["citation"], citations)
        rows.append(
            {
                "method": row["method"],
                "accuracy": float(row["accuracy"]),
                "variant": row.get("variant"),
                "table": name,
                "source": source,
                "protocol_as_stated": table["protocol_as_stated"],
                "citation_key": row["citation"],
                "citation_text": citation_text(citation),
            }
        )
    return {**{k: v for k, v in table.items() if k != "rows"}, "source": source, "rows": rows}


def _citation(path: Path, table: str, key: str, citations: dict) -> dict:
    if key not in citations:
        raise ReportError(f"{path}: table {table} cites unknown {key!r}")
    return citations[key]


def _short(citation: dict) -> str:
    """ "Raimondo et al. 2024" from the first author's surname and the year."""
    first = citation["authors"].split(",")[0].split()[-1]
    return f"{first} et al. {citation['year']}"


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
