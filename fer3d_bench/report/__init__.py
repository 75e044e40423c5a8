"""An evaluation run's fold results -> protocol aggregates, tables beside published rows, figures.

- `aggregate`: each protocol's own reduction of fold scores (its rules are in its docstring);
- `load`: run.json and every result.json of a run folder, checked against each other;
- `published`: the published rows and their citations;
- `build`: the report record (groups, titles that name every truncation, timings);
- `tables`, `markdown`, `figures`: what a reader sees;
- `write`: all of it into the run folder, each file atomically.

Nothing here imports torch: the report runs on a login node from the JSON files alone.
"""

from fer3d_bench.report.write import ReportPaths, write_report

__all__ = ["ReportPaths", "write_report"]
