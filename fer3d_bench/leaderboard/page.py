"""The boards as one self-contained HTML page: inline style and script, nothing fetched.

Every text read from a file (folder, model and method names, descriptions, sources) is other
people's: it is escaped where it is written (`_text`, `_attr`), and never reaches the script.
The same boards give the same bytes: no timestamps, numbers written with fixed digits, rows in
a fixed order, links relative to the page's folder.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fer3d_bench import __version__
from fer3d_bench.leaderboard.assets import SCRIPT, STYLE
from fer3d_bench.leaderboard.board import Board, PublishedRow, Row, Score
from fer3d_bench.records.conditions import NOT_STATED

MISSING = "—"
DESCRIPTION_CHARS = 300  # a submitter's description is shown up to this many characters


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str | None  # "number" or "text" to sort on; None: not sortable


COLUMNS = (
    Column("name", "Run or submission", "text"),
    Column("accuracy", "Accuracy (%)", "number"),
    Column("macro_f1", "Macro-F1 (%)", "number"),
    Column("delta", "Δ accuracy vs baseline (points, 95% interval)", "number"),
    Column("folds", "Folds ok / expected", "number"),
    Column("pretrained", "Pretrained", "text"),
    Column("conditions", "Conditions", "text"),
    Column("provenance", "Provenance", "text"),
    Column("report", "Report", None),
    Column("notes", "Notes: how it differs from the baseline; caveats", "text"),
)


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _attr(value: object) -> str:
    return f'"{html.escape(str(value), quote=True)}"'


def _cell(key: str, content: str, value: object = None, title: str | None = None) -> str:
    """A cell of column `key` holding `content` (HTML already escaped); `value` is what it
    sorts by, `title` what a pointer over it shows."""
    attrs = f" class={_attr(key)}"
    if value is not None:
        attrs += f" data-value={_attr(value)}"
    if title:
        attrs += f" title={_attr(title)}"
    return f"<td{attrs}>{content}</td>"


def _hash(source: str) -> str:
    """The CSP source that allows exactly this inline style or script."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def format_page(boards: list[Board], out: Path) -> str:
    """The page; `out` is the folder it is written into (its links are relative to it)."""
    policy = (
        f"default-src 'none'; style-src {_hash(STYLE)}; script-src {_hash(SCRIPT)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )
    nav = " ".join(
        f"<a href={_attr('#' + _anchor(b.protocol))}>{_text(b.protocol)}</a>" for b in boards
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content={_attr(policy)}>',
        "<title>fer3d-bench leaderboard</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>fer3d-bench leaderboard</h1>",
        '<p class="lead">One table per protocol. Accuracy and macro-F1 are means over the '
        "folds, ± their std across repetitions (over the folds where there is one repetition). "
        "Each row is compared with the protocol's baseline; a row whose conditions differ from "
        "the baseline's is marked and says why, and the published rows stand apart, as printed "
        "by their papers. Click a column's header to sort; an address ending in "
        "<code>#sort=accuracy</code> (or <code>#sort=-accuracy</code>, descending) opens the "
        "page sorted.</p>",
        f"<nav>{nav}</nav>",
        "</header>",
        "<main>",
        *[_board(board, out) for board in boards],
        "</main>",
        f"<footer>Written by fer3d-bench {_text(__version__)} from the report.json of "
        f"{len({row.entry.folder for b in boards for row in b.rows})} folders.</footer>",
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _anchor(protocol: str) -> str:
    return f"protocol-{protocol}"


def _board(board: Board, out: Path) -> str:
    head = "".join(_head(column) for column in COLUMNS)
    ours = "\n".join(_row(row, rank, out) for rank, row in enumerate(board.rows))
    versions = ", ".join(board.versions)
    parts = [
        f"<section id={_attr(_anchor(board.protocol))}>",
        f"<h2>{_text(board.protocol)} <small>version {_text(versions)}</small></h2>",
        f'<p class="caption">{_text(board.baseline_note)}; its conditions: '
        f"{_text(board.baseline.conditions.words())}</p>",
        '<div class="scroll">',
        f'<table class="board" data-protocol={_attr(board.protocol)}>',
        f"<thead><tr>{head}</tr></thead>",
        f'<tbody class="ours">\n{ours}\n</tbody>',
    ]
    if board.published:
        heading = (
            f'<tr class="heading"><th colspan="{len(COLUMNS)}" scope="rowgroup">'
            f"{_text(board.published_heading())}</th></tr>"
        )
        rows = [_published(row, rank) for rank, row in enumerate(board.published)]
        parts.append('<tbody class="published">\n' + "\n".join([heading, *rows]) + "\n</tbody>")
    parts += [
        "</table>",
        "</div>",
        "<p class=\"legend\">Δ: this row's mean accuracy minus the baseline's, in points, with "
        "its 95% interval where a paired comparison of the test samples both were scored on "
        "was made (a pointer over the cell says what it rests on); published rows get none, "
        "their numbers are not on these samples. Notes: first each way the row's "
        "conditions differ from the baseline's (a marked row: its numbers do not compare), "
        "then what makes a number look better than it is, and how much of the protocol ran.</p>",
        "</section>",
    ]
    return "\n".join(parts)


def _head(column: Column) -> str:
    if column.kind is None:
        return f'<th scope="col">{_text(column.title)}</th>'
    return (
        f'<th scope="col" data-key={_attr(column.key)} data-type={_attr(column.kind)}>'
        f'<button type="button">{_text(column.title)}</button></th>'
    )


def _row(row: Row, rank: int, out: Path) -> str:
    classes = ["ours"]
    if row.baseline:
        classes.append("baseline")
    if row.differences:
        classes.append("incomparable")
    if row.flags:
        classes.append("flagged")
    group, entry = row.group, row.entry
    aggregate = group.aggregate
    short, weights = row.pretrained
    cells = [
        _cell("name", _name(row), entry.label),
        _score_cell("accuracy", row.accuracy),
        _score_cell("macro_f1", row.macro_f1),
        _delta_cell(row),
        _cell(
            "folds",
            f"{aggregate.folds_ok} / {group.folds_expected}",
            aggregate.folds_ok,
            "; ".join(group.truncation) or "the full protocol",
        ),
        _cell("pretrained", _text(short), short, weights),
        _cell("conditions", _text(row.conditions.words()), row.conditions.words()),
        _provenance(row),
        _cell("report", _report_link(entry.folder, out)),
        _notes(row),
    ]
    return (
        f"<tr class={_attr(' '.join(classes))} data-rank={_attr(rank)}>" + "".join(cells) + "</tr>"
    )


def _name(row: Row) -> str:
    entry = row.entry
    run = entry.report.run
    if entry.submitted:
        kind = "submitted predictions, scored by fer3d-bench"
    elif run.experiment:
        kind = f"fer3d-bench reproduce: {run.experiment.get('name')}"
    else:
        kind = "fer3d-bench evaluate" + (f", preset {run.preset}" if run.preset else "")
    if row.group.variant != "full":
        kind += f", variant {row.group.variant}"
    parts = [
        f'<span class="model">{_text(entry.label)}</span>',
        f'<span class="folder">{_text(entry.name)}</span>',
        f'<span class="kind">{_text(kind)}</span>',
    ]
    if row.baseline:
        parts.append('<span class="kind">baseline</span>')
    description = (run.submission or {}).get("description")
    if isinstance(description, str) and description:
        more = "…" if len(description) > DESCRIPTION_CHARS else ""
        cut = description[:DESCRIPTION_CHARS] + more
        parts.append(f'<span class="description">{_text(cut)}</span>')
    return "".join(parts)


def _score_cell(key: str, score: Score) -> str:
    if score.mean is None:
        return _cell(key, MISSING, title="no fold finished")
    std = f' ± <span class="std">{100 * score.std:.2f}</span>' if score.std is not None else ""
    content = f'<span class="mean">{100 * score.mean:.2f}</span>{std}'
    return _cell(key, content, repr(score.mean), f"std {score.basis}")


def _signed(points: float) -> str:
    return f"{points:+.2f}".replace("-", "−")


def _delta_cell(row: Row) -> str:
    if row.baseline:
        return _cell("delta", "baseline", 0.0)
    if row.delta is None:
        return _cell("delta", MISSING, title="no comparison of the samples was available")
    delta = row.delta
    content = f'<span class="diff">{_signed(100 * delta.difference)}</span>'
    if delta.low is not None and delta.high is not None:
        interval = f"[{_signed(100 * delta.low)}, {_signed(100 * delta.high)}]"
        content += f' <span class="interval">{interval}</span>'
    return _cell("delta", content, repr(delta.difference), delta.note or None)


def _provenance(row: Row) -> str:
    run = row.entry.report.run
    entry = run.protocols.get(row.group.protocol)
    version = run.fer3d_bench_version or NOT_STATED
    manifest = (entry.manifest_sha256 if entry else None) or NOT_STATED
    parts = [f"fer3d-bench {_text(version)}"]
    if run.git_commit and run.git_commit != "unknown":
        parts.append(f"git {_text(run.git_commit[:12])}{' (dirty)' if run.git_dirty else ''}")
    parts.append(f"manifest <code title={_attr(manifest)}>{_text(_short(manifest))}</code>")
    if run.submission is not None:
        parts.append("predictions only")
    else:
        data = run.fingerprint or NOT_STATED
        parts.append(f"dataset <code title={_attr(data)}>{_text(_short(data))}</code>")
    return _cell("provenance", "; ".join(parts), version)


def _short(value: str) -> str:
    return value if value == NOT_STATED or len(value) <= 16 else f"{value[:12]}…"


def _report_link(folder: Path, out: Path) -> str:
    markdown = folder / "report.md"
    if not markdown.is_file():
        return "report.md missing"
    relative = os.path.relpath(markdown.resolve(), out.resolve())
    return f"<a href={_attr(quote(Path(relative).as_posix()))}>report.md</a>"


def _notes(row: Row) -> str:
    notes = [*row.differences, *[f for f in row.flags if f not in row.differences]]
    notes += [f"truncated: {t}" for t in row.group.truncation]
    if not notes:
        return _cell("notes", "", "")
    items = "".join(f"<li>{_text(note)}</li>" for note in notes)
    return _cell("notes", f"<ul>{items}</ul>", "; ".join(notes))


def _published(row: PublishedRow, rank: int) -> str:
    conditions = row.conditions
    words = conditions.words() if conditions else NOT_STATED
    if row.protocol_as_stated:
        words += f" (protocol as stated: {row.protocol_as_stated})"
    weights = conditions.weights if conditions else NOT_STATED
    source = row.source + (f"; {row.citation}" if row.citation else "")
    notes = list(row.differences)
    items = "".join(f"<li>{_text(note)}</li>" for note in notes)
    cells = [
        _cell(
            "name",
            f'<span class="model">{_text(row.method)}</span><span class="kind">published</span>',
            row.method,
        ),
        _cell(
            "accuracy",
            f'<span class="mean">{_text(_printed(row))}</span>'
            '<span class="basis">as printed</span>',
            repr(row.accuracy),
        ),
        _cell("macro_f1", MISSING),
        _cell("delta", MISSING, title="not computed: a published number is not on these samples"),
        _cell("folds", MISSING),
        _cell("pretrained", _text(weights), weights),
        _cell("conditions", _text(words), words),
        _cell("provenance", _text(source), source),
        _cell("report", MISSING),
        _cell("notes", f"<ul>{items}</ul>" if items else "", "; ".join(notes)),
    ]
    return f'<tr class="published" data-rank={_attr(rank)}>' + "".join(cells) + "</tr>"


def _printed(row) -> str:
    """The published accuracy as its paper prints it; from the fraction where a report of
    an earlier version did not carry the printed digits."""
    return row.printed or f"{100 * row.accuracy:.2f}"
