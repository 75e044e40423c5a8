"""The page's own style and script, inline: the page fetches nothing, from disk or a server.

The script only reorders rows that are already in the page (it reads no data of its own), so
nothing read from a file ever reaches script context. Sorting: a click on a column's header, or
the address's fragment `#sort=KEY` (ascending) / `#sort=-KEY` (descending), KEY being the
header's `data-key`; a header's `data-type="number"` sorts on its cells' `data-value` as
numbers. Every table body is sorted on its own, so the published rows stay in their section;
rows without a value go last either way, and ties keep the order the page was written in.
"""

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #111; background: #fff; margin: 1.5em; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .3em; }
p.lead, p.caption, p.legend { max-width: 70em; margin: .3em 0; }
p.caption { color: #333; }
p.legend { color: #444; font-size: .9em; }
nav a { margin-right: 1em; }
.scroll { overflow-x: auto; }
table.board { border-collapse: collapse; margin: .5em 0; min-width: 60em; }
table.board th, table.board td {
  border: 1px solid #bbb; padding: .3em .5em; vertical-align: top; text-align: left;
}
table.board thead th { background: #e8ecf2; position: sticky; top: 0; }
table.board thead th button {
  font: inherit; font-weight: bold; color: #111; background: none; border: 0; padding: 0;
  cursor: pointer; text-align: left;
}
table.board thead th[aria-sort="ascending"] button::after { content: " \\25B2"; }
table.board thead th[aria-sort="descending"] button::after { content: " \\25BC"; }
td.accuracy, td.macro_f1, td.delta, td.folds { text-align: right; white-space: nowrap; }
td.conditions, td.provenance, td.notes { font-size: .85em; overflow-wrap: anywhere; }
td.conditions { min-width: 16em; max-width: 26em; }
td.provenance { min-width: 12em; max-width: 20em; }
td.notes { min-width: 16em; max-width: 26em; }
td.notes ul { margin: 0; padding-left: 1.1em; }
.model { font-weight: bold; display: block; }
.folder, .kind, .basis, .description { display: block; color: #555; font-size: .85em; }
.basis { display: inline; margin-left: .3em; }
code { font-size: .9em; }
tr.baseline td { background: #eaf3ff; }
tr.baseline td.name { border-left: 4px solid #2a62b8; }
tr.incomparable td { background: #fff3e0; }
tr.incomparable td.notes { color: #8a3b00; }
tr.flagged td.name { border-left: 4px solid #c05a00; }
tbody.published td { background: #f2f2f2; color: #333; }
tbody.published tr.heading th {
  background: #d9d9d9; font-style: italic; font-weight: normal; border-top: 3px double #777;
}
footer { margin-top: 2em; color: #555; font-size: .85em; }
"""

SCRIPT = """
(function () {
  "use strict";
  var PATTERN = /^#sort=(-?)([a-z_]+)$/;

  function sortValue(cell, numeric) {
    var raw = cell ? cell.getAttribute("data-value") : null;
    if (raw === null || raw === "") { return null; }
    if (!numeric) { return raw.toLowerCase(); }
    var number = Number(raw);
    return isFinite(number) ? number : null;
  }

  function sortTable(table, key, descending) {
    var heads = table.tHead.rows[0].cells, column = -1, numeric = false, i;
    for (i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-key") === key) {
        column = i;
        numeric = heads[i].getAttribute("data-type") === "number";
      }
    }
    if (column < 0) { return; }
    for (i = 0; i < heads.length; i++) {
      if (i === column) {
        heads[i].setAttribute("aria-sort", descending ? "descending" : "ascending");
      } else {
        heads[i].removeAttribute("aria-sort");
      }
    }
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var items = Array.prototype.filter.call(body.rows, function (row) {
        return !row.classList.contains("heading");
      }).map(function (row) {
        return {
          row: row,
          value: sortValue(row.cells[column], numeric),
          rank: Number(row.getAttribute("data-rank"))
        };
      });
      items.sort(function (a, b) {
        if (a.value === null || b.value === null) {
          if (a.value === b.value) { return a.rank - b.rank; }
          return a.value === null ? 1 : -1;
        }
        var order = a.value < b.value ? -1 : (a.value > b.value ? 1 : 0);
        return (descending ? -order : order) || a.rank - b.rank;
      });
      items.forEach(function (item) { body.appendChild(item.row); });
    });
    table.setAttribute("data-sorted", (descending ? "-" : "") + key);
  }

  function sortAll(key, descending) {
    Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
      sortTable(table, key, descending);
    });
  }

  function fromAddress() {
    var found = PATTERN.exec(window.location.hash);
    if (found) { sortAll(found[2], found[1] === "-"); }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("th[data-key] button") : null;
    if (!button) { return; }
    var head = button.parentNode, key = head.getAttribute("data-key");
    var now = head.getAttribute("aria-sort");
    var descending = now ? now === "ascending" : head.getAttribute("data-type") === "number";
    sortAll(key, descending);
    window.location.hash = "sort=" + (descending ? "-" : "") + key;
  });
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
})();
"""
