"""The small worlds the tests share: a generated sample, its merged HDF5 and its manifests.

One `Worlds` lives for the whole session (the `worlds` fixture of tests/conftest.py). It builds
a world the first time one is asked for and hands out the same folder afterwards, keyed by what
decides its bytes: the sample's configuration, the crop size and which sources are merged. So a
world two rooms need (`small` for evaluation, `data` for tune) is built once, not once a room.

A world's folder holds `sample/` (make_sample), `merged.h5` (build_dataset), `render/` (its
render folder) and `m/` (every manifest anyone asked for, each written once: the same bytes
whoever asks first). It is read-only for the tests: a test that changes something copies it
first. `check_untouched` says which files changed since the factory last wrote them; the
`worlds` fixture runs it after every test module.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, BuildReport, build_dataset
from fer3d_bench.manifests import items_from_h5
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.synthetic import SampleConfig, make_sample

# one subject per dataset: every source and every protocol has something to read
TINY = SampleConfig(
    seed=11,
    bu3dfe_subjects=1,
    bosphorus_subjects=1,
    cald3r_subjects=1,
    mend3s_subjects=1,
    cald3r_samples_per_class=1,
)
TINY_SIZE = 48

# three BU-3DFE subjects at 64 px: enough folds for evaluate, tune, score, folds and explain
# (tests/data/run-0.7.0 was made by 0.7.0 on this same sample)
SMALL = SampleConfig(
    seed=31,
    bu3dfe_subjects=3,
    bosphorus_subjects=0,
    cald3r_subjects=0,
    mend3s_subjects=0,
)
SMALL_SIZE = 64

# ten CalD3r/MenD3s subjects, two samples a class: enough for the tiny model to learn
LEARN = SampleConfig(
    seed=21,
    bu3dfe_subjects=0,
    bosphorus_subjects=0,
    cald3r_subjects=5,
    mend3s_subjects=5,
    cald3r_samples_per_class=2,
)

# all three datasets, a few subjects each: every experiment of the paper has its folds
EXPERIMENTS = SampleConfig(
    seed=41,
    bu3dfe_subjects=3,
    bosphorus_subjects=2,
    cald3r_subjects=2,
    mend3s_subjects=2,
    cald3r_samples_per_class=1,
)


def sources_of(config: SampleConfig) -> tuple[str, ...]:
    """The source folders a sample of `config` has, by name, sorted."""
    counts = {
        "bu3dfe": config.bu3dfe_subjects,
        "bosphorus": config.bosphorus_subjects,
        "cald3r-mend3s": config.cald3r_subjects + config.mend3s_subjects,
    }
    return tuple(sorted(name for name, count in counts.items() if count))


def roots_of(sample: Path, sources: tuple[str, ...]) -> dict[str, Path]:
    """Source name -> its folder in the sample at `sample`."""
    return {name: sample / name for name in sources}


@dataclass(frozen=True)
class World:
    """A built world: `folder` holds sample/, merged.h5, render/ and m/."""

    folder: Path
    report: BuildReport
    sources: tuple[str, ...]

    @property
    def sample(self) -> Path:
        return self.folder / "sample"

    @property
    def merged(self) -> Path:
        return self.folder / "merged.h5"

    @property
    def manifests(self) -> Path:
        return self.folder / "m"

    @property
    def roots(self) -> dict[str, Path]:
        return roots_of(self.sample, self.sources)


class Worlds:
    """Builds each world (and each bare sample) once per session; see the module docstring."""

    def __init__(self, tmp_path_factory):
        self._tmp = tmp_path_factory
        self._samples: dict[SampleConfig, Path] = {}
        self._worlds: dict[tuple[SampleConfig, int, tuple[str, ...]], World] = {}
        self._written: dict[Path, set[str]] = {}  # world folder -> protocols in its m/
        self._snapshots: dict[Path, dict[str, tuple]] = {}  # folder -> what it held

    def sample(self, config: SampleConfig) -> Path:
        """The generated sample of `config` (its root: one folder a source, ground_truth.json),
        generated the first time; a world's own sample where one was built first."""
        if config not in self._samples:
            out = self._tmp.mktemp(f"sample-seed{config.seed}-") / "sample"
            make_sample(out, config, workers=1, progress=False)
            self._samples[config] = out
            self._snapshot(out.parent)
        return self._samples[config]

    def world(
        self,
        config: SampleConfig,
        size: int,
        sources: tuple[str, ...] | list[str] | None = None,
        manifests: tuple[str, ...] | list[str] = (),
    ) -> World:
        """The world of `config` rendered at `size` px with `sources` merged (None: every
        source the sample has), with the manifest of each protocol in `manifests` in its m/."""
        chosen = tuple(sorted(sources_of(config) if sources is None else sources))
        key = (config, size, chosen)
        if key not in self._worlds:
            self._worlds[key] = self._build(config, size, chosen)
        world = self._worlds[key]
        self._write_manifests(world, manifests)
        return world

    def check_untouched(self) -> list[str]:
        """What changed in any world or sample since the factory last wrote it or last looked
        (empty: nothing), so that each change is named once, after the module that made it."""
        changes = []
        for folder, before in self._snapshots.items():
            now = _listing(folder)
            for path in sorted(before.keys() | now.keys()):
                if before.get(path) != now.get(path):
                    what = "added" if path not in before else "removed" if path not in now else ""
                    changes.append(f"{folder / path}: {what or 'changed'}")
            self._snapshots[folder] = now
        return changes

    def _build(self, config: SampleConfig, size: int, sources: tuple[str, ...]) -> World:
        folder = self._tmp.mktemp(f"world-seed{config.seed}-{size}px-")
        if config in self._samples:  # generated already: the same bytes, copied
            shutil.copytree(self._samples[config], folder / "sample")
        else:
            make_sample(folder / "sample", config, workers=1, progress=False)
            self._samples[config] = folder / "sample"
        report = build_dataset(
            roots_of(folder / "sample", sources),
            folder / "merged.h5",
            BuildOptions(render=RenderOptions(size=size)),
            render_dir=folder / "render",
            progress=False,
        )
        (folder / "m").mkdir()
        self._written[folder] = set()
        self._snapshot(folder)
        return World(folder, report, sources)

    def _write_manifests(self, world: World, protocols) -> None:
        new = [name for name in dict.fromkeys(protocols) if name not in self._written[world.folder]]
        if not new:
            return
        items = items_from_h5(world.merged)
        for name in new:
            manifest = sp.make_manifest(sp.load_protocol(name), items, "test")
            sp.write_manifest(manifest, world.manifests)
            self._written[world.folder].add(name)
        self._snapshot(world.folder)

    def _snapshot(self, folder: Path) -> None:
        self._snapshots[folder] = _listing(folder)


def _listing(folder: Path) -> dict[str, tuple]:
    """Relative path -> (kind, size, modification time) of everything under `folder`."""
    listing = {}
    for path in folder.rglob("*"):
        stat = path.lstat()
        kind = "dir" if path.is_dir() and not path.is_symlink() else "file"
        listing[path.relative_to(folder).as_posix()] = (
            (kind,) if kind == "dir" else (kind, stat.st_size, stat.st_mtime_ns)
        )
    return listing
