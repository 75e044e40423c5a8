"""Is a merged file still what the builder wrote? (`fer3d-bench verify`)

Every column and every sample is read through the reader, so in a 1.2.0 file each chunk's
Fletcher-32 checksum is checked and the first damaged sample is named; then the content
fingerprint is recomputed exactly as the builder computed it and compared with the stored one,
which catches what chunk checksums cannot: a 1.1.0 file has none, and a file rewritten through
HDF5 gets new ones.

Before any of that, the reader refuses a file whose bytes could come from elsewhere (a link,
a virtual dataset, external storage) or whose schema version promises checksums that some
dataset lacks, so `verify` never vouches for pixels it did not read from the file itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fer3d_bench.dataset.reader import H5Dataset
from fer3d_bench.dataset.schema import add_to_fingerprint
from fer3d_bench.errors import DamagedData, MergedFileError
from fer3d_bench.progress import progress as progress_bar


def verify(path: Path | str, progress: bool = True) -> str:
    """The one-line OK summary; raises `MergedFileError` naming the first damage found (columns
    first, then samples in order), or the fingerprint mismatch."""
    path = Path(path)
    try:
        with H5Dataset(path) as data:
            for name in data.column_names:
                data.column(name)
            digest = hashlib.sha256()
            samples = progress_bar(range(len(data)), desc="verify", unit="sample", enabled=progress)
            for index in samples:
                sample = data[index]
                add_to_fingerprint(digest, sample.sample_id, sample.label, sample.rgb, sample.depth)
    except DamagedData as exc:
        raise MergedFileError(path, f"damaged: {exc.where} {exc.cause}") from None
    if digest.hexdigest() != data.fingerprint:
        raise MergedFileError(
            path,
            f"damaged: fingerprint mismatch (stored {data.fingerprint}, recomputed "
            f"{digest.hexdigest()}): sample ids, labels or pixels changed after the build",
        )
    checked = (
        "every chunk passed its checksum and the fingerprint matches"
        if data.checksums
        else f"{data.schema_version} file: no per-chunk checksums, only the fingerprint was checked"
    )
    return (
        f"OK {path}: {len(data)} samples, schema {data.schema_version}, {checked}; "
        f"fingerprint {data.fingerprint}"
    )
