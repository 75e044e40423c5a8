"""The project's own error types: each message names the file and what was expected."""

from __future__ import annotations

from pathlib import Path


class Fer3dError(Exception):
    """Base class of every error fer3d-bench raises on purpose.

    The message says what to do in Python terms (an argument: `manifests=DIR`); where the
    command line says it differently (an option: `--manifests DIR`), `cli` holds that wording,
    and the CLI prints `for_cli()`. One error, said to each reader in the terms they type.
    """

    def __init__(self, *args, cli: str | None = None):
        super().__init__(*args)
        self.cli = cli

    def for_cli(self) -> str:
        """The message as the command line says it."""
        return self.cli or str(self)


class FileError(Fer3dError):
    """A file cannot be used as it stands: "PATH: problem", with both kept for callers."""

    def __init__(self, path: Path | str, problem: str, cli_problem: str | None = None):
        self.path = Path(path)
        self.problem = problem
        cli = f"{self.path}: {cli_problem}" if cli_problem else None
        super().__init__(f"{self.path}: {problem}", cli=cli)


class FormatError(FileError):
    """A file does not follow its dataset's published format."""


class DatasetNotFoundError(Fer3dError):
    """A dataset root is missing or holds no recognisable samples."""


class ConfigError(Fer3dError):
    """A configuration file (label map, layout patterns) is invalid."""


class ManifestMismatch(Fer3dError):
    """The dataset does not hold exactly what a protocol's manifest names."""


class ReportError(Fer3dError):
    """A run folder, a result file or the published table cannot be reported on as it stands."""


class MergedFileError(FileError):
    """A merged HDF5 file cannot be used as it stands: missing, not HDF5, truncated, without
    what its schema requires, or damaged."""


class DamagedData(MergedFileError):
    """Stored data fails its checksum or cannot be read back: the file's bytes changed after
    it was written. `where` names the sample and dataset (or the column), `cause` what failed;
    `fer3d-bench verify` finds the first damage in the whole file."""

    def __init__(self, path: Path | str, where: str, cause: str):
        self.where = where
        self.cause = cause
        super().__init__(
            path, f"{where} {cause}: the file is damaged; run `fer3d-bench verify {path}`"
        )
