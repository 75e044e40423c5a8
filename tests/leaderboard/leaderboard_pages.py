"""The leaderboard page read back as data (stdlib html.parser), for the static and browser tests:
what a reader sees in each cell, and what the page sorts it by."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "wbr", "source"}


@dataclass
class Cell:
    text: str = ""
    value: str | None = None
    title: str | None = None
    spans: dict[str, str] = field(default_factory=dict)  # span class -> its text
    links: list[str] = field(default_factory=list)


@dataclass
class Row:
    classes: list[str]
    rank: str | None
    cells: dict[str, Cell] = field(default_factory=dict)
    heading: str | None = None  # the text of a heading row


@dataclass
class Body:
    classes: list[str]
    rows: list[Row] = field(default_factory=list)

    def data(self) -> list[Row]:
        return [row for row in self.rows if row.heading is None]


@dataclass
class Table:
    protocol: str
    sorted: str | None
    heads: dict[str, str | None] = field(default_factory=dict)  # data-key -> aria-sort
    bodies: list[Body] = field(default_factory=list)

    def body(self, name: str) -> Body:
        (found,) = [b for b in self.bodies if name in b.classes]
        return found


@dataclass
class Page:
    tables: list[Table] = field(default_factory=list)
    scripts: int = 0
    styles: list[str] = field(default_factory=list)
    script_text: list[str] = field(default_factory=list)
    policy: str | None = None
    texts: list[str] = field(default_factory=list)  # every text node, in order


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[tuple[str, dict]] = []
        self.cell: Cell | None = None
        self.span: str | None = None
        self.in_heading = False
        self.raw: str | None = None  # "script" or "style" while inside one

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        classes = attrs.get("class", "").split()
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy":
            self.page.policy = attrs.get("content")
        if tag in ("script", "style"):
            self.raw = tag
            self.page.scripts += tag == "script"
        if tag == "table" and "board" in classes:
            self.page.tables.append(Table(attrs.get("data-protocol"), attrs.get("data-sorted")))
        elif tag == "th" and "data-key" in attrs and self.page.tables:
            self.page.tables[-1].heads[attrs["data-key"]] = attrs.get("aria-sort")
        elif tag == "tbody" and self.page.tables:
            self.page.tables[-1].bodies.append(Body(classes))
        elif tag == "tr" and self._in("tbody"):
            self.page.tables[-1].bodies[-1].rows.append(Row(classes, attrs.get("data-rank")))
        elif tag == "td" and self._in("tbody"):
            self.cell = Cell(value=attrs.get("data-value"), title=attrs.get("title"))
            self.page.tables[-1].bodies[-1].rows[-1].cells[classes[0]] = self.cell
        elif tag == "th" and self._in("tbody"):
            self.in_heading = True
            self.page.tables[-1].bodies[-1].rows[-1].heading = ""
        elif tag == "span" and self.cell is not None:
            self.span = classes[0] if classes else None
            if self.span:
                self.cell.spans[self.span] = ""
        elif tag == "a" and self.cell is not None:
            self.cell.links.append(attrs.get("href", ""))
        if tag not in VOID:
            self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        while self.stack:
            name, _ = self.stack.pop()
            if name == tag:
                break
        if tag == "td":
            self.cell = None
        elif tag == "span":
            self.span = None
        elif tag == "th":
            self.in_heading = False
        elif tag in ("script", "style"):
            self.raw = None

    def handle_data(self, data):
        if self.raw == "style":
            self.page.styles.append(data)
            return
        if self.raw == "script":
            self.page.script_text.append(data)
            return
        self.page.texts.append(data)
        if self.cell is not None:
            self.cell.text += data
            if self.span:
                self.cell.spans[self.span] += data
        elif self.in_heading:
            self.page.tables[-1].bodies[-1].rows[-1].heading += data

    def _in(self, tag: str) -> bool:
        return any(name == tag for name, _ in self.stack)


def read_page(text: str) -> Page:
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return reader.page


def report_of(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def shown_score(group: dict, metric: str) -> tuple[str, str]:
    """(mean, std) as the page must show them, from report.json's group: percent with two
    decimals, the std across repetitions where there are several, else over the folds."""
    aggregate = group["aggregate"]
    levels = aggregate[metric]
    several = len(aggregate["repetitions"]) > 1
    std = levels["std_across_repetitions" if several else "mean_std_within_repetitions"]
    return f"{100 * levels['mean']:.2f}", f"{100 * std:.2f}"
