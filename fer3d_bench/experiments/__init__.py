"""The paper's experiments as data: one small versioned TOML file per table or result.

An experiment names the published table it reproduces (`published.toml`), its protocols, the
variants it trains (the reference model `full` and ablations of model or loss) and the paper's
training settings for it (`[train]`, applied to the `paper` preset like a protocol's own table),
and, optionally, how each protocol's folds report their epoch (`[epoch_selection]`: protocol name
-> "last" or "best-test"; it beats the default of `--epoch-selection`, not an explicit one),
and, for the inflation experiment, which of its protocols deals by subject and which by sample
(`[inflation]`: subject = ..., sample = ...), whose numbers `reproduce` then sets side by side.
`fer3d-bench reproduce NAME` runs it through `evaluate`'s one path and reports it in the paper's
table layout. Everything is checked where the file is read, so that a wrong file stops before
anything is planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fer3d_bench import splits as sp
from fer3d_bench.errors import ConfigError
from fer3d_bench.names import checked_name, checked_version
from fer3d_bench.records.conditions import SELECTIONS
from fer3d_bench.records.io import RecordNotFound, read_toml, shown
from fer3d_bench.report.published import load_tables
from fer3d_bench.train.config import ABLATIONS, FULL, table_overrides

EXPERIMENTS_DIR = Path(__file__).resolve().parent
_KEYS = {
    "name",
    "version",
    "title",
    "table",
    "protocols",
    "variants",
    "train",
    "epoch_selection",
    "inflation",
}


@dataclass(frozen=True)
class Experiment:
    name: str
    version: str
    title: str
    table: str  # a table id of published.toml
    protocols: tuple[str, ...]
    variants: tuple[str, ...]  # "full" first, then ablations
    train: dict = field(default_factory=dict)  # dotted config keys: the paper's settings
    epoch_selection: dict = field(default_factory=dict)  # protocol name -> one of SELECTIONS
    # {"subject": protocol dealt by subject, "sample": the same dealt by sample}, or empty
    inflation: dict = field(default_factory=dict)

    @property
    def ablations(self) -> tuple[str, ...]:
        return tuple(v for v in self.variants if v != FULL)

    def record(self) -> dict:
        """What run.json says of the experiment a run reproduces."""
        record = {
            "name": self.name,
            "version": self.version,
            "title": self.title,
            "table": self.table,
            "train": dict(self.train),
        }
        if self.epoch_selection:  # absent, as before it existed, where it sets none
            record["epoch_selection"] = dict(self.epoch_selection)
        if self.inflation:
            record["inflation"] = dict(self.inflation)
        return record


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.toml"))


def load_experiment(name: str, directory: Path = EXPERIMENTS_DIR) -> Experiment:
    """The experiment of that name (in `directory`: the installed ones unless a test says
    otherwise), checked against the protocols, variants and published table."""
    checked_name(name, "experiment")
    path = Path(directory) / f"{name}.toml"
    try:
        data = read_toml(path, what="experiment")
    except RecordNotFound:
        known = ", ".join(experiment_names())
        raise ConfigError(f"no experiment {name!r} (known: {known})") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown or not {"name", "version", "table", "protocols", "variants"} <= data.keys():
        raise ConfigError(f"{path}: unknown keys {unknown} or missing ones (needs {sorted(_KEYS)})")
    selection = _checked_selection(path, data.get("epoch_selection", {}), data["protocols"])
    experiment = Experiment(
        name=checked_name(data["name"], "experiment name", path),
        version=checked_version(data["version"], "experiment version", path),
        title=data.get("title", data["name"]),
        table=data["table"],
        protocols=tuple(data["protocols"]),
        variants=tuple(data["variants"]),
        train=table_overrides(data.get("train", {}), f"{path} [train]"),
        epoch_selection=selection,
        inflation=_checked_inflation(path, data.get("inflation", {}), data["protocols"]),
    )
    _check(path, experiment)
    return experiment


def _checked_selection(path: Path, table: object, protocols: list[str]) -> dict[str, str]:
    """[epoch_selection]: a table of the experiment's protocols, each "last" or "best-test"."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [epoch_selection] must be a table of protocol = selection")
    for protocol, selection in table.items():
        if protocol not in protocols:
            raise ConfigError(
                f"{path}: [epoch_selection] names {protocol!r}, not a protocol of the "
                f"experiment ({', '.join(protocols)})"
            )
        if selection not in SELECTIONS:
            raise ConfigError(
                f"{path}: [epoch_selection] {protocol} = {shown(selection)}: expected one of "
                f"{', '.join(SELECTIONS)}"
            )
    return dict(table)


def _checked_inflation(path: Path, table: object, protocols: list[str]) -> dict[str, str]:
    """[inflation]: `subject` and `sample`, two protocols of the experiment dealt that way."""
    if table == {}:
        return {}
    if not isinstance(table, dict) or set(table) != {"subject", "sample"}:
        raise ConfigError(f"{path}: [inflation] must hold exactly subject = ... and sample = ...")
    for unit, protocol in table.items():
        if protocol not in protocols:
            raise ConfigError(
                f"{path}: [inflation] {unit} = {shown(protocol)} is not a protocol of the "
                f"experiment ({', '.join(protocols)})"
            )
        if sp.load_protocol(protocol).unit != unit:
            raise ConfigError(
                f"{path}: [inflation] {unit} = {protocol}, which is not dealt by {unit}"
            )
    return dict(table)


def _check(path: Path, experiment: Experiment) -> None:
    if experiment.name != path.stem:
        raise ConfigError(f"{path}: holds experiment {experiment.name!r}, not {path.stem!r}")
    if experiment.variants[:1] != (FULL,):
        raise ConfigError(f"{path}: variants must start with {FULL!r}")
    unknown = sorted(set(experiment.ablations) - set(ABLATIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown variants {unknown}; known: {sorted(ABLATIONS)}")
    for protocol in experiment.protocols:
        sp.load_protocol(protocol)  # refuses an unknown one, naming the known
    tables = load_tables()
    if experiment.table not in tables:
        raise ConfigError(f"{path}: published.toml has no table {experiment.table!r}")
    table = tables[experiment.table]
    if table["protocol"] not in experiment.protocols:
        raise ConfigError(f"{path}: table {experiment.table} is on {table['protocol']}, not run")
    needed = {row["variant"] for row in table["rows"] if row["variant"]}
    missing = sorted(needed - set(experiment.variants))
    if missing:
        raise ConfigError(f"{path}: table {experiment.table} has rows of variants {missing}")
