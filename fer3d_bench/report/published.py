"""The published results a run is shown beside, with their citations, from `published.toml`."""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.errors import ReportError
from fer3d_bench.records.io import RecordError, read_toml

PUBLISHED = Path(__file__).resolve().parents[1] / "published.toml"
NOT_REPRODUCED = "published, not reproduced by fer3d-bench"


def load_published(path: Path = PUBLISHED) -> dict[str, list[dict]]:
    """Published rows per protocol, each with its citation resolved and rendered as text."""
    try:
        data = read_toml(path, what="published table")
    except RecordError as error:
        raise ReportError(f"{path}: cannot read the published table ({error.problem})") from None
    citations = data.get("citations", {})
    table: dict[str, list[dict]] = {}
    for protocol, rows in sorted(data.get("results", {}).items()):
        table[protocol] = [_published_row(path, protocol, row, citations) for row in rows]
    return table


def _published_row(path: Path, protocol: str, row: dict, citations: dict) -> dict:
    if not {"method", "accuracy", "citation", "protocol"} <= row.keys():
        raise ReportError(f"{path}: a {protocol} row needs method, accuracy, citation, protocol")
    if row["citation"] not in citations:
        raise ReportError(f"{path}: {protocol}/{row['method']} cites unknown {row['citation']!r}")
    citation = citations[row["citation"]]
    return {
        "method": row["method"],
        "accuracy": float(row["accuracy"]),
        "protocol_as_stated": row["protocol"],
        "verified": bool(row.get("verified", False)),
        "note": row.get("note"),
        "citation_key": row["citation"],
        "citation": citation,
        "citation_text": citation_text(citation),
    }


def citation_text(citation: dict) -> str:
    """Authors, title, venue, year and identifiers, with what was not verified said aloud."""
    parts = [
        citation.get("authors") or "authors not verified",
        f'"{citation["title"]}"',
        citation.get("venue"),
        str(citation["year"]) if citation.get("year") else None,
        f"arXiv:{citation['arxiv']}" if citation.get("arxiv") else None,
        f"doi:{citation['doi']}" if citation.get("doi") else None,
    ]
    text = ", ".join(part for part in parts if part)
    if not citation.get("verified", False):
        text += f" [citation not verified: {citation.get('note') or 'no source checked'}]"
    return text
