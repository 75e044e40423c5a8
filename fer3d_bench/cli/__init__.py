"""Command line: thin click commands that parse options, call the pipeline and print.

Each command lives in the module of its stage and is imported only when it runs: `splits show`
or `report` must not wait for torch (seconds to import) on a login node.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from fer3d_bench import __version__
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import NO_SPACE, full

COMMANDS = {  # name -> "module:command", in the order of the flow
    "make-sample": "fer3d_bench.cli.data:make_sample",
    "scan": "fer3d_bench.cli.data:scan",
    "render-depth": "fer3d_bench.cli.data:render_depth",
    "build-dataset": "fer3d_bench.cli.data:build_dataset",
    "inspect": "fer3d_bench.cli.data:inspect",
    "verify": "fer3d_bench.cli.data:verify",
    "splits": "fer3d_bench.cli.splits:splits",
    "weights": "fer3d_bench.cli.weights:weights",
    "train": "fer3d_bench.cli.evaluation:train",
    "evaluate": "fer3d_bench.cli.evaluation:evaluate",
    "reproduce": "fer3d_bench.cli.evaluation:reproduce",
    "tune": "fer3d_bench.cli.tune:tune",
    "report": "fer3d_bench.cli.report:report",
    "score": "fer3d_bench.cli.report:score",
    "compare": "fer3d_bench.cli.compare:compare",
    "leaderboard": "fer3d_bench.cli.leaderboard:leaderboard",
    "explain": "fer3d_bench.cli.explain:explain",
    "demo": "fer3d_bench.cli.evaluation:demo",
}

# name -> the line `fer3d-bench --help` lists, kept here so that the listing imports no command
# (each command's module pulls in torch, timm, matplotlib or pandas: seconds on a login node);
# tests/cli/test_first_hour.py checks that every command has one and that torch stays out
SUMMARIES = {
    "make-sample": "Write a procedural sample of all three datasets.",
    "scan": "Index a dataset ROOT: counts, every file skipped and why.",
    "render-depth": "Aligned RGB crops and 16-bit depth maps for every sample.",
    "build-dataset": "Merge the datasets into one versioned HDF5 file.",
    "inspect": "Schema, counts, flags and QA sheets of a merged file.",
    "verify": "Check every sample of a merged file against its checksums.",
    "splits": "Protocols -> published, versioned, verifiable manifests.",
    "weights": "Identify pretrained backbone files, import old pickles.",
    "train": "Train the reference model on one fold of a manifest.",
    "evaluate": "Train and test every fold of each protocol, then report.",
    "reproduce": "Run one of the paper's experiments, in the paper's layout.",
    "tune": "Random search of the paper's hyperparameters on one fold.",
    "report": "A run folder's results as report.md, report.json, figures.",
    "score": "Score anyone's predictions exactly as evaluate scores ours.",
    "compare": "Compare runs or scored submissions fold by fold.",
    "leaderboard": "One HTML page of runs' and submissions' reports.",
    "explain": "Class-activation heatmaps over RGB and depth of one fold.",
    "demo": "Everything on the generated sample, ending in the report.",
}

# the long commands: what Ctrl-C leaves in place, said instead of click's bare "Aborted!"
KEPT_ON_INTERRUPT = {
    "render-depth": "the samples rendered so far are kept",
    "build-dataset": "the samples rendered so far are kept in the render folder (the .h5 is "
    "written only once complete)",
    "evaluate": "the finished folds are kept (their result.json); the fold that was training "
    "starts again from its last checkpoint",
    "reproduce": "the finished folds are kept (their result.json); the fold that was training "
    "starts again from its last checkpoint",
    "tune": "the finished trials are kept in --storage; the interrupted one is tried again",
    "train": "the epochs finished are kept in OUT's checkpoint",
    "demo": "every finished stage and fold is kept",
}


def interrupted(command: str) -> str:
    """The line Ctrl-C prints for `command`: what was kept and how to resume."""
    kept = KEPT_ON_INTERRUPT.get(command)
    if kept is None:
        return "interrupted"
    return f"interrupted: {kept}; run the same command again to resume"


class _Main(click.Group):
    """Loads each command's module when it is asked for (the lazy group of click's docs), and
    turns the project's own errors into one clear line and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing from SUMMARIES: `--help` loads no command module."""
        with formatter.section("Commands"):  # each under 60 characters: one line at 80 columns
            formatter.write_dl([(name, SUMMARIES[name]) for name in COMMANDS])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.secho(interrupted(ctx.invoked_subcommand or ""), fg="yellow", err=True)
            sys.exit(130)  # the shell's status for a SIGINT
        except Fer3dError as exc:
            click.secho(f"error: {exc.for_cli()}", fg="red", err=True)
            if getattr(exc, "exit_at_once", False):  # a library left unable to shut down
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)
            sys.exit(1)
        except OSError as exc:  # a full disk met by a writer outside io.atomic_path
            if exc.errno not in NO_SPACE:
                raise
            problem = full(exc.filename or "", exc, "free some space and run it again").problem
            where = f"{exc.filename}: " if exc.filename else ""
            click.secho(f"error: {where}{problem}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=_Main)
@click.version_option(__version__, prog_name="fer3d-bench")
def main() -> None:
    """fer3d-bench: a reproducible RGB+depth facial expression recognition benchmark."""
