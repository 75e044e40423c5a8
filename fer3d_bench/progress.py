"""Progress bars that stay readable in log files.

tqdm redraws its bar in place with carriage returns, and nested bars move the cursor with
ANSI escapes. On a terminal that is what we want; in a CI log, a Slurm job log or `> log`
it turns into one huge line of redraws and escape codes. `progress()` therefore picks a
mode from where the output goes:

- ``bars``: the stream is a terminal (``isatty()``): a plain tqdm bar.
- ``lines``: the stream is not a terminal: tqdm still counts and formats (n/total, elapsed,
  rate, ETA), but output is whole lines ending in ``"\\n"``, never ``"\\r"`` or escapes: at
  most one line every `LINE_INTERVAL` seconds while running, and one final line on close,
  e.g. ``render-depth bu3dfe: 100% 120/120 [00:41<00:00, 2.90sample/s]``.
  Bars made with ``leave=False`` (inner bars, e.g. batches of one epoch inside a fold) write
  nothing at all in this mode: the outer bar carries the information, and the log gets no
  line per epoch.
- ``off``: `enabled=False`: a disabled tqdm, which writes nothing.

Every mode returns a tqdm instance, so callers may use ``update``, ``set_postfix_str``,
``set_description``, ``reset``, ``close``, iteration, ``with`` and
``with bar.external_write_mode(): print(...)`` alike.

The environment variable ``FER3D_PROGRESS`` forces a mode: ``lines``, ``bars`` or ``off``
(unset, empty or ``auto``: choose as above). ``off`` also wins over ``enabled=True``;
``enabled=False`` always means off.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

__all__ = ["LINE_INTERVAL", "progress"]

#: Seconds between two intermediate lines in line mode (the final line is always written).
LINE_INTERVAL = 30.0

ENV_VAR = "FER3D_PROGRESS"
_MODES = ("lines", "bars", "off")


class _LineTqdm(tqdm):
    """tqdm that writes a whole line now and then instead of redrawing in place.

    Only the output side is replaced: `display` (throttled, no cursor moves, ignores
    `pos`), `clear` and `moveto` (nothing to undo in a log), `close` (final line, or
    nothing for a bar that is not left). Counting, rate and formatting stay tqdm's.
    """

    monitor_interval = 0  # no monitor thread: with miniters=1, `update` checks the time itself

    def __init__(self, *args: Any, line_interval: float = LINE_INTERVAL, **kwargs: Any):
        self._line_interval = line_interval
        self._line_t: float | None = None  # time of the last line; None until started
        # ncols=0: stats only, no bar glyphs. mininterval + miniters=1: `update` asks for a
        # refresh once per interval, however the rate changes.
        super().__init__(*args, ncols=0, mininterval=line_interval, miniters=1, **kwargs)

    def _leaves(self) -> bool:
        # tqdm's own rule: leave=None keeps only the outermost bar
        return abs(self.pos) == 0 if self.leave is None else bool(self.leave)

    def _write_line(self, line: str) -> None:
        self.fp.write(line + "\n")
        getattr(self.fp, "flush", lambda: None)()

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = self._time()
        if self._line_t is None:  # the refresh tqdm does on creation: no "0/N" line
            self._line_t = now
            return True
        if msg is not None or not self._leaves() or now - self._line_t < self._line_interval:
            return True  # msg is only ever "" (a clear), nothing to erase in a log
        if self.total and self.n >= self.total:
            return True  # done: `close` writes the final line
        self._line_t = now
        self._write_line(str(self))
        return True

    def clear(self, nolock: bool = False) -> None:
        pass

    def moveto(self, n: int) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        self._line_t = None  # restart the interval, no line for the reset itself
        super().reset(total)

    def close(self) -> None:
        if getattr(self, "disable", True):
            return
        if self._leaves() and hasattr(self, "start_t"):
            with self._lock:
                self._ema_dt = lambda: None  # overall average rate, as tqdm does on close
                self._write_line(str(self))
        self.disable = True
        self._decr_instances(self)


def _mode(enabled: bool, stream: Any) -> str:
    if not enabled or stream is None:
        return "off"
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in _MODES:
        return forced
    if forced not in ("", "auto"):
        warnings.warn(
            f"{ENV_VAR}={forced!r} is not one of {', '.join(_MODES)} or auto; ignored",
            stacklevel=3,
        )
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return "bars" if tty else "lines"


def progress(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    leave: bool | None = True,
    stream: IO[str] | None = None,
    line_interval: float | None = None,
    initial: int = 0,
) -> tqdm:
    """A tqdm progress bar over `iterable` (or for manual `update`) suited to `stream`.

    `stream` defaults to `sys.stderr` (looked up at call time). `line_interval` overrides
    `LINE_INTERVAL` in line mode (seconds between intermediate lines). See the module
    docstring for the modes and the ``FER3D_PROGRESS`` override. `initial`: units done before
    this call (reused), counted in n/total but not in the rate.
    """
    stream = sys.stderr if stream is None else stream
    common = {"total": total, "desc": desc, "unit": unit, "leave": leave, "file": stream}
    common["initial"] = initial
    mode = _mode(enabled, stream)
    if mode == "off":
        return tqdm(iterable, **common, disable=True)
    if mode == "bars":
        return tqdm(iterable, **common)
    interval = LINE_INTERVAL if line_interval is None else line_interval
    return _LineTqdm(iterable, **common, line_interval=interval)
