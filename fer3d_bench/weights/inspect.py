"""`weights inspect`: which file this is, what it holds, and which backbones its tensors fit.

Tensor names and shapes cannot tell a TensorFlow-ported EfficientNet (`tf_efficientnet_b2`)
from the plain one of the same size: both hold the same tensors. The known table, or for a
pickle the classes it names (`Conv2dSame` is the tf_ models' "same" padding), tells them apart.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from fer3d_bench.weights import known as table
from fer3d_bench.weights.files import read_weights, split_head
from fer3d_bench.weights.hub import offline_timm
from fer3d_bench.weights.known import FileHashes, Identity, KnownWeights, file_hashes

CANDIDATES = ("tf_efficientnet_b2", "efficientnet_b2", "tf_efficientnet_b0", "efficientnet_b0")


@dataclass
class Inspection:
    path: Path
    hashes: FileHashes
    known: KnownWeights | None
    form: str
    shapes: dict[str, tuple[int, ...]]  # backbone tensors
    dropped: list[str]  # classifier keys
    names: list[str]  # classes a pickle named
    metadata: dict[str, str]
    fits: list[str]  # candidate architectures whose backbone tensors match exactly
    identity: Identity  # for a safetensors file, what its metadata claims, verified or not


@functools.cache
def backbone_shapes(architecture: str) -> dict[str, tuple[int, ...]]:
    """The tensors of a timm model without its classifier (no weights are fetched)."""
    model = offline_timm().create_model(architecture, pretrained=False, num_classes=0)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def inspect_weights(path: Path, candidates=CANDIDATES) -> Inspection:
    path = Path(path)
    weights = read_weights(path)
    hashes = file_hashes(path)
    backbone, dropped = split_head(weights.tensors)
    shapes = {k: tuple(v.shape) for k, v in backbone.items()}
    fits = [name for name in candidates if backbone_shapes(name) == shapes]
    return Inspection(
        path,
        hashes,
        table.known_weights().get(hashes.git_blob_sha1),
        weights.form,
        shapes,
        dropped,
        sorted(set(weights.names)),
        weights.metadata,
        fits,
        table.identify(path, hashes),
    )


def describe(found: Inspection) -> str:
    """The lines `weights inspect` prints."""
    known = found.known
    lines = [
        f"{found.path}: {found.form}, {found.hashes.size} bytes",
        f"  git blob sha1 {found.hashes.git_blob_sha1}",
        f"  sha256        {found.hashes.sha256}",
    ]
    if known:
        lines += [
            f"  known: {known.name} ({known.upstream}), trained on {known.trained_on}",
            f"  made for {known.architecture} at {known.input_size} px",
        ]
    else:
        lines.append("  known: no (not one of the files in fer3d_bench/weights/known.toml)")
    meta = found.metadata
    if meta.get("source_file"):
        lines.append(
            f"  imported from {meta['source_file']} (known: {meta.get('known', 'unknown')}, "
            f"sha256 {meta.get('source_sha256')})"
        )
    claim = found.identity
    if claim.known and not found.known:  # a claim of the metadata, not the file's own hash
        if claim.verified:
            lines.append(
                f"  identity: {claim.known.name}, verified (the tensors hash to what the "
                "import recorded)"
            )
        else:
            lines.append(f"  identity: {claim.known.name} claimed, not verified ({claim.why})")
    if found.names:
        tf = any(name.endswith(".Conv2dSame") for name in found.names)
        lines.append(f"  pickle names {len(found.names)} globals; only tensor rebuilders were used")
        if tf:
            lines.append("  it uses Conv2dSame ('same' padding): a TensorFlow-ported tf_ model")
    count = len(found.shapes)
    lines.append(f"  {count} backbone tensors; classifier keys left out: {found.dropped}")
    for key in list(found.shapes)[:3]:
        lines.append(f"    {key} {list(found.shapes[key])}")
    fits = ", ".join(found.fits) or "none of " + ", ".join(CANDIDATES)
    lines.append(f"  fits: {fits}")
    if len(found.fits) > 1:
        lines.append("  (tf_ and plain variants hold the same tensors; they compute differently)")
    return "\n".join(lines)
