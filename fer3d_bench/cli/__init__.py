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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Fer3dError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
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
