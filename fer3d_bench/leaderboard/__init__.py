"""A static leaderboard page of run folders and scored submissions, from their report.json.

- `entries`: each folder's report.json, read by the hardened reader of `records.report`;
- `board`: one table per protocol: our rows against a baseline, each with its conditions and
  what keeps it from comparing, and the protocol's published rows kept apart;
- `deltas`: each row's accuracy against the baseline's with its 95% interval (`compare`);
- `page`, `assets`: the self-contained HTML page (inline style, a small sorting script);
- `write`: all of it into `--out`, atomically.

Nothing here imports torch: the page is made from the JSON files alone.
"""

from fer3d_bench.leaderboard.write import PAGE, leaderboard_boards, write_leaderboard

__all__ = ["PAGE", "leaderboard_boards", "write_leaderboard"]
