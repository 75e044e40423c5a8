"""The leaderboard page of some run and scored folders, written atomically into its folder."""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.errors import ReportError
from fer3d_bench.io import atomic_path, inside, output_folder
from fer3d_bench.leaderboard.board import Board, build_boards
from fer3d_bench.leaderboard.deltas import baseline_deltas
from fer3d_bench.leaderboard.entries import read_entries
from fer3d_bench.leaderboard.page import format_page

PAGE = "index.html"


def leaderboard_boards(folders: list[Path], baseline: Path | None = None) -> list[Board]:
    """The boards of `folders` against `baseline` (default: the first folder), which need not
    be among them (it is then read too and shown first)."""
    if not folders:
        raise ReportError("a leaderboard needs at least one run or scored folder")
    folders = [Path(f) for f in folders]
    if baseline is not None and Path(baseline).resolve() not in {f.resolve() for f in folders}:
        folders = [Path(baseline), *folders]
    entries = read_entries(folders)
    chosen = Path(baseline).resolve() if baseline is not None else folders[0].resolve()
    base = next(e for e in entries if e.folder.resolve() == chosen)
    return build_boards(entries, base, baseline_deltas(entries, base))


def write_leaderboard(folders: list[Path], out: Path, baseline: Path | None = None) -> Path:
    """`out`/index.html: the leaderboard page; every input is read (and refused, if damaged)
    before anything is written."""
    boards = leaderboard_boards(folders, baseline)
    out = output_folder(out)
    page = inside(out, out / PAGE)
    text = format_page(boards, out)
    with atomic_path(page) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return page
