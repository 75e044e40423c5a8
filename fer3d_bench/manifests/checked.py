"""A protocol's manifest, found and checked: the one place that says where a protocol's
manifest lies and when it may be used (torchgeo's `_verify()`, for splits).

Everything that trains or scores a protocol goes through here: `evaluate`'s planner, `score`,
`folds`, `tune` and `train`. A manifest that contradicts itself is refused; one that does not
match the dataset is refused with what differs and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer3d_bench.errors import ManifestMismatch
from fer3d_bench.splits import (
    MANIFESTS_DIR,
    Item,
    Manifest,
    Protocol,
    load_protocol,
    manifest_path,
    read_manifest,
    verify,
)


@dataclass(frozen=True)
class CheckedManifest:
    """A protocol with its manifest and the file it was read from."""

    protocol: Protocol
    manifest: Manifest
    path: Path

    @classmethod
    def of_protocol(cls, name: str, manifests: Path) -> CheckedManifest:
        """`<manifests>/<protocol>/<version>.json` of a protocol (name or .toml), refused if it
        holds another protocol or version. Its invariants are checked by `checked` or
        `against`."""
        protocol = load_protocol(name)
        path = manifest_path(manifests, protocol)
        manifest = read_manifest(path)
        if (manifest.protocol_name, manifest.version) != (protocol.name, protocol.version):
            raise ManifestMismatch(
                f"{path}: holds {manifest.protocol_name} {manifest.version}, "
                f"not {protocol.name} {protocol.version}"
            )
        return cls(protocol, manifest, path)

    @classmethod
    def of_file(cls, path: Path) -> CheckedManifest:
        """A manifest file given as such, with the protocol it states (`train --manifest`)."""
        manifest = read_manifest(Path(path))
        return cls(manifest.stated_protocol(), manifest, Path(path))

    def checked(self) -> CheckedManifest:
        """Itself, refused if the manifest contradicts itself or its protocol."""
        broken = self.manifest.broken_invariants(self.protocol)
        if broken:
            raise ManifestMismatch(f"{self.path} contradicts itself:\n  " + "\n  ".join(broken))
        return self

    def against(self, dataset: Path, items: list[Item]) -> CheckedManifest:
        """Itself, refused unless `items` (of `dataset`) are exactly the manifest's samples and
        the manifest keeps its own invariants."""
        result = verify(self.manifest, self.protocol, items)
        if not result.ok:
            details = "\n  ".join(result.describe())
            said = (
                f"{self.which()} does not match {dataset} (as `fer3d-bench splits verify "
                f"--manifest {self.path} --dataset {dataset}` reports):\n  {details}\n"
            )
            python, cli = self.another("the dataset was meant for")
            raise ManifestMismatch(said + python, cli=said + cli)
        return self

    @property
    def published(self) -> bool:
        """Whether the manifest was read from the published data_manifests/ folder."""
        return self.path.resolve().parent.parent == MANIFESTS_DIR.resolve()

    def which(self) -> str:
        """The manifest in words for messages: the published one or the one given, and where."""
        kind = "the published manifest" if self.published else "the manifest given"
        return f"{kind} {self.path}"

    def another(self, meant: str) -> tuple[str, str]:
        """How to use another manifest instead, said in Python (an argument) and on the command
        line (an option): the same advice in the terms each reader types."""
        generate = "generate one for this dataset with `fer3d-bench splits generate`"
        return (
            f"Use the manifests {meant}: pass manifests=DIR (the folder holding "
            f"{self.protocol.name}/{self.protocol.version}.json, e.g. the demo's "
            f"<demo>/manifests), or {generate}.",
            f"Use the manifests {meant} (--manifests DIR, the folder holding "
            f"{self.protocol.name}/{self.protocol.version}.json, e.g. the demo's "
            f"<demo>/manifests), or {generate}.",
        )
