"""A study store that is not what it claims: a garbage Optuna journal, a FIFO in its place, a
study whose setup record is not one. `tune` says so in one line naming it, before any trial,
and leaves the file as it was."""

import contextlib
import os
import signal

import optuna
import pytest
from click.testing import CliRunner
from tuning import PROTOCOL, tune_args

from fer3d_bench.cli import main
from fer3d_bench.tune.study import SETUP

GARBAGE = {
    "text": "garbage\n",
    "an object of another log": '{"a": 1}\n',
    "a list": "[1]\n",
    "nested past any parser": "[" * 100_000 + "\n",
    "an unknown operation": '{"op_code": 99, "worker_id": "w"}\n',
    "a study without its name": '{"op_code": 0, "worker_id": "w"}\n',
    "garbage after a good line": (
        '{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\nbroken\n'
    ),
}


@contextlib.contextmanager
def deadline(seconds: int = 60):
    def expired(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(args: list[str], *named: str) -> str:
    """The one `error:` line of a command that must exit 1 without a traceback."""
    with deadline():
        result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), result.output  # not a traceback
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for words in named:
        assert words in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("name", GARBAGE)
def test_a_garbage_journal_is_refused_in_one_line_naming_it(data, tmp_path, name):
    journal = tmp_path / "study.log"
    journal.write_text(GARBAGE[name])
    line = refused(tune_args(data, tmp_path, f"journal:{journal}", 1), f"{journal}: ")
    assert "not an Optuna journal" in line
    assert journal.read_text() == GARBAGE[name]  # nothing appended to it
    assert not (tmp_path / "best-trials").exists() and not (tmp_path / "best.toml").exists()


def test_a_fifo_in_place_of_the_journal_does_not_hang_tune(data, tmp_path):
    journal = tmp_path / "study.log"
    os.mkfifo(journal)
    refused(
        tune_args(data, tmp_path, f"journal:{journal}", 1),
        f"{journal}: Optuna journal is not a regular file",
    )


def test_a_study_whose_setup_is_not_a_record_is_refused(data, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        storage=storage, study_name=f"{PROTOCOL}-tiny-r0-f0", direction="maximize"
    )
    study.set_user_attr(SETUP, "searched by hand")
    refused(tune_args(data, tmp_path, storage, 1), "not a study of `fer3d-bench tune`")
