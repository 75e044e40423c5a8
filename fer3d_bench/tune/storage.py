"""Where a study lives, and what becomes of the trial a killed worker was running.

`--storage` is any Optuna RDB URL (`sqlite:///study.db`, `postgresql://...`) or `journal:PATH`,
Optuna's JournalStorage on a log file, for shared file systems whose locks do not work (NFS
without a lock daemon, some cluster scratch systems): it takes its lock by creating a file
(`JournalFileOpenLock`), which any POSIX file system makes atomic.

A worker killed mid-trial leaves its trial RUNNING. Each running trial has a heartbeat; a trial
whose heartbeat is older than the grace period is failed, and a copy of it (same params) is
queued as WAITING, by `optuna.storages.RetryHeartbeatStaleTrialCallback` (Optuna 5's name for
`RetryFailedTrialCallback`), before the next trial any worker starts, so a resumed search retries
what was lost. RDB storages do this themselves (`heartbeat_interval`, `grace_period`). Optuna 5's
JournalStorage has no heartbeat, so for a journal the same is done here: a thread records the
trial's user attribute `heartbeat` (unix time), and `fail_stale_journal_trials` fails and queues
again the running trials silent for longer than the grace period. Its clocks are the workers'
own, so workers sharing a journal from several hosts need clocks within the grace period.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import TrialState

from fer3d_bench.errors import FileError
from fer3d_bench.io import regular_file
from fer3d_bench.records.io import is_int, shown
from fer3d_bench.tune import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, TuneError

JOURNAL = "journal:"
JOURNAL_KIND, RDB_KIND = "journal", "rdb"
BEAT = "heartbeat"  # journal trials' user attribute: the last heartbeat's unix time
MAX_RETRY = 3  # a trial lost with its worker this many times is left failed
# what SQLite and PostgreSQL say when another worker created the tables or the version row first
_CREATION_RACE = ("already exists", "unique constraint", "duplicate key")
SQLITE_TIMEOUT_S = 60  # how long a worker waits for another's write to a shared SQLite file
# The largest journal read: a trial writes a few KiB to it (its params, values and a heartbeat a
# minute), so 1 GiB is hundreds of thousands of trials. A larger file is not a study of ours.
MAX_JOURNAL_BYTES = 2**30


@dataclass(frozen=True)
class Heartbeat:
    """Seconds between a running trial's heartbeats, and of silence before it counts as lost."""

    interval: int = HEARTBEAT_INTERVAL_S
    grace: int = GRACE_PERIOD_S

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace <= self.interval:
            raise TuneError(
                f"heartbeat interval {self.interval} s and grace period {self.grace} s: "
                "the interval must be at least 1 s and the grace period longer"
            )


def storage_kind(url: str) -> str:
    return JOURNAL_KIND if url.startswith(JOURNAL) else RDB_KIND


def retry_callback() -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def open_storage(url: str, heartbeat: Heartbeat):
    """The Optuna storage `url` names; errors name the URL."""
    if storage_kind(url) == JOURNAL_KIND:
        return _journal(Path(url[len(JOURNAL) :]))
    return _rdb(url, heartbeat)


def _journal(path: Path) -> JournalStorage:
    """The journal at `path` (created if missing). One that is not an Optuna journal is
    refused in one line naming it: Optuna itself fails on it with a traceback of its own, at
    once or, for a bad last line, only once a worker appends the next."""
    if not path.name:
        raise TuneError("--storage journal:PATH needs a file path after 'journal:'")
    if not path.parent.is_dir():
        raise TuneError(f"{path}: journal folder {path.parent} does not exist")
    if path.exists():
        _check_journal(path)
    try:
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        storage = JournalStorage(backend)  # replays the whole log
        storage.get_all_studies()
    except Exception as exc:  # noqa: BLE001 - a log Optuna cannot replay fails in many ways
        problem = _first_line(exc)
        raise TuneError(
            f"{path}: not an Optuna journal (Optuna cannot replay it: {problem})"
        ) from None
    return storage


def _check_journal(path: Path) -> None:
    """A regular file of at most MAX_JOURNAL_BYTES whose every complete line is a JSON object
    with an integer `op_code`, as Optuna writes them. A last line without its newline may be
    one another worker is writing: it is left to Optuna."""
    try:
        regular_file(path, what="Optuna journal", max_bytes=MAX_JOURNAL_BYTES)
    except FileError as error:
        raise TuneError(str(error)) from None
    with open(path, "rb") as log:
        for number, line in enumerate(log, 1):
            if not line.endswith(b"\n"):
                return
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
                entry = None
            if not isinstance(entry, dict) or not is_int(entry.get("op_code")):
                raise TuneError(
                    f"{path}: not an Optuna journal (line {number} is not one of its entries: "
                    f"{shown(line.decode('utf-8', 'replace').strip())})"
                )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _rdb(url: str, heartbeat: Heartbeat) -> RDBStorage:
    engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    attempts = 3
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat.interval,
                    grace_period=heartbeat.grace,
                    heartbeat_stale_trial_callback=retry_callback(),
                )
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy and its drivers raise many kinds
            # two workers creating a new database at once: the second sees the first's tables
            if any(m in str(exc).lower() for m in _CREATION_RACE) and attempt < attempts:
                time.sleep(1)
                continue
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise TuneError(
                f"--storage {url}: cannot open it as an Optuna storage ({problem})"
            ) from None


@contextlib.contextmanager
def journal_heartbeat(trial: optuna.Trial, heartbeat: Heartbeat) -> Iterator[None]:
    """Record the trial's heartbeat every `interval` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(UpdateFinishedTrialError):  # failed by another worker
                trial.set_user_attr(BEAT, time.time())
            if stop.wait(heartbeat.interval):
                return

    thread = threading.Thread(target=beat, name="tune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_journal_trials(study: optuna.Study, heartbeat: Heartbeat) -> list[int]:
    """Fail the running trials whose heartbeat is older than the grace period, and queue a copy
    of each; the numbers of those failed here. A trial another worker failed first is left to
    it (its `tell` wins in the journal), so each lost trial is queued once."""
    now, failed = time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        if now - max(float(trial.user_attrs.get(BEAT, 0.0)), started) <= heartbeat.grace:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, UpdateFinishedTrialError):  # finished meanwhile, by its worker too
            continue
        retry_callback()(study, study.get_trials(deepcopy=True)[trial.number])
        failed.append(trial.number)
    return failed
