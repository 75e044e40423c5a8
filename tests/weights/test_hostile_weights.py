"""Weight files that are small on disk and ask for much (issue 25, class 3): each is built here,
and `weights inspect` / `weights import` must refuse it quickly, in one line naming the file,
with bounded memory and nothing written.

All the files are read in ONE subprocess (one torch import), under a timeout: a reader that
hangs or takes all memory fails the test instead of the test run. The subprocess reports, per
file and command, the exit status, stdout, stderr and seconds, and the growth of its peak
memory over the whole series.
"""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from fer3d_bench.weights.limits import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_PICKLE_BYTES,
    MAX_PICKLE_OPS,
    MAX_ZIP_ENTRIES,
)

READER = r"""
import json, resource, sys, time
from click.testing import CliRunner
from fer3d_bench.cli import main

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

folder, names = sys.argv[1], sys.argv[2:]
runner = CliRunner()
warm = runner.invoke(main, ["weights", "inspect", f"{folder}/plain.pt"])  # imports, model shapes
assert warm.exit_code == 0, warm.output
before, results = peak(), {}
for name in names:
    for command in ("inspect", "import"):
        args = ["weights", command, f"{folder}/{name}"]
        if command == "import":
            args += ["--out", f"{folder}/out/{name}.safetensors"]
        started = time.perf_counter()
        result = runner.invoke(main, args)
        results[f"{name} {command}"] = {
            "code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "seconds": time.perf_counter() - started,
        }
print(json.dumps({"grown": peak() - before, "results": results}))
"""


def torch_zip(obj) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


def rewritten(path: Path, member: str, write, compress=zipfile.ZIP_STORED) -> Path:
    """A torch archive of a tiny state dict whose member ending in `member` is replaced by
    what `write(stream)` writes (streamed: nothing large is held in memory)."""
    source = torch_zip({"w": torch.zeros(4)})
    with zipfile.ZipFile(path, "w", compress, compresslevel=1) as new:
        for info in source.infolist():
            if info.filename.endswith(member):
                with new.open(info.filename, "w", force_zip64=True) as stream:
                    write(stream)
            else:
                new.writestr(info.filename, source.read(info), zipfile.ZIP_STORED)
    return path


def shared_graph(folder: Path) -> Path:
    """A whole model of 10 KB whose modules form a chain of 40 levels, each level holding the
    next one twice: 2**40 paths to its one Linear, if walked naively."""
    module = nn.Linear(1, 1)
    for _ in range(40):
        parent = nn.Module()
        parent.a, parent.b = module, module
        module = parent
    torch.save(module, folder / "shared_graph.pt")
    return folder / "shared_graph.pt"


def cycle(folder: Path) -> Path:
    """A module that holds its own parent: a walk without a bound never ends."""
    module = nn.Module()
    module.inner = nn.Linear(1, 1)
    module.inner.loop = module
    torch.save(module, folder / "cycle.pt")
    return folder / "cycle.pt"


def inflating_storage(folder: Path) -> Path:
    """260 KB on disk, a tensor record that unpacks to more than MAX_FILE_BYTES."""

    def zeros(stream):
        chunk = bytes(1 << 20)
        for _ in range((MAX_FILE_BYTES >> 20) + 4):
            stream.write(chunk)

    return rewritten(folder / "inflating.pt", "data/0", zeros, zipfile.ZIP_DEFLATED)


def inflating_pickle(folder: Path) -> Path:
    """10 KB on disk, a data.pkl that unpacks past MAX_PICKLE_BYTES (NONE, POP, again)."""

    def pickle(stream):
        stream.write(b"\x80\x02" + b"N0" * (MAX_PICKLE_BYTES // 2 + 1024) + b"}.")

    return rewritten(folder / "big_pickle.pt", "data.pkl", pickle, zipfile.ZIP_DEFLATED)


def many_operations(folder: Path) -> Path:
    """A stored data.pkl of 0.6 MB and more than MAX_PICKLE_OPS operations."""

    def pickle(stream):
        stream.write(b"\x80\x02" + b"N0" * (MAX_PICKLE_OPS // 2 + 1000) + b"}.")

    return rewritten(folder / "many_ops.pt", "data.pkl", pickle)


def many_members(folder: Path) -> Path:
    """A torch archive with more members than MAX_ZIP_ENTRIES (a directory parsed whole)."""
    path, source = folder / "many_members.pt", torch_zip({"w": torch.zeros(4)})
    with zipfile.ZipFile(path, "w") as new:
        for info in source.infolist():
            new.writestr(info, source.read(info))
        for number in range(MAX_ZIP_ENTRIES + 10):
            new.writestr(f"archive/extra/{number}", b"")
    return path


def legacy_huge_storage(folder: Path) -> Path:
    """torch's older format, 368 bytes, one storage declaring 10**9 floats (torch allocates
    what this format declares before reading it)."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    assert data.count(b"K\x04N") == 1  # numel 4 (BININT1), then no view
    huge = b"J" + (10**9).to_bytes(4, "little") + b"N"
    (folder / "legacy_huge.pt").write_bytes(data.replace(b"K\x04N", huge))
    return folder / "legacy_huge.pt"


def legacy_behind_an_archive(folder: Path) -> Path:
    """The same, with an empty zip archive appended: zipfile.is_zipfile says yes, torch reads
    the older format (it looks at the first bytes), and so must the checks."""
    data = legacy_huge_storage(folder).read_bytes()
    archive = io.BytesIO()
    zipfile.ZipFile(archive, "w").close()
    (folder / "legacy_zip.pt").write_bytes(data + archive.getvalue())
    assert zipfile.is_zipfile(folder / "legacy_zip.pt")
    return folder / "legacy_zip.pt"


def wrapped(folder: Path) -> Path:
    """A state dict inside 100 nested {"model": ...} wrappers."""
    obj: dict = {"w": torch.zeros(4)}
    for _ in range(100):
        obj = {"model": obj}
    torch.save(obj, folder / "wrapped.pt")
    return folder / "wrapped.pt"


def sparse(folder: Path) -> Path:
    """Larger than MAX_FILE_BYTES (sparse: nothing is written to disk)."""
    path = folder / "sparse.pt"
    with open(path, "wb") as stream:
        stream.truncate(MAX_FILE_BYTES + 1)
    return path


def fifo(folder: Path) -> Path:
    path = folder / "fifo.pt"
    os.mkfifo(path)
    return path


HOSTILE = {  # maker -> the problem the one line names
    shared_graph: "names more than 100,000 modules and tensors",
    cycle: f"more than {MAX_DEPTH} levels deep",
    inflating_storage: f"refusing more than {MAX_FILE_BYTES:,} bytes",
    inflating_pickle: f"refusing more than {MAX_PICKLE_BYTES:,} bytes",
    many_operations: f"more than {MAX_PICKLE_OPS:,} operations",
    many_members: f"refusing more than {MAX_ZIP_ENTRIES:,} members",
    legacy_huge_storage: "declares 4,000,000,000 bytes of tensors; the file holds 368",
    legacy_behind_an_archive: "declares 4,000,000,000 bytes of tensors; the file holds 390",
    wrapped: f"wrapped more than {MAX_DEPTH} deep",
    sparse: f"refusing more than {MAX_FILE_BYTES:,} bytes",
    fifo: "is not a regular file",
}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """(folder, file name by maker, what the subprocess reported), every file read once."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "out").mkdir()
    torch.save(nn.Linear(2, 2).state_dict(), folder / "plain.pt")
    names = {make: make(folder).name for make in HOSTILE}
    assert max(p.stat().st_size for p in folder.iterdir() if p.name != "sparse.pt") < 3 << 20
    run = subprocess.run(
        [sys.executable, "-c", READER, str(folder), *names.values()],
        capture_output=True,
        text=True,
        timeout=240,  # a reader that hangs fails here; the whole series takes seconds
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return folder, names, json.loads(run.stdout.splitlines()[-1])


@pytest.mark.parametrize("make", list(HOSTILE), ids=lambda make: make.__name__)
@pytest.mark.parametrize("command", ["inspect", "import"])
def test_a_hostile_file_is_refused_in_one_line_naming_it(outcome, make, command):
    folder, names, report = outcome
    got = report["results"][f"{names[make]} {command}"]
    assert got["code"] == 1, got
    assert got["stdout"] == ""
    lines = got["stderr"].splitlines()
    assert len(lines) == 1, got["stderr"]
    assert lines[0].startswith(f"error: {folder / names[make]}: ") and HOSTILE[make] in lines[0]
    assert got["seconds"] < 30, got  # bounded work (500,000 pickle operations take ~2 s)


def test_memory_stays_bounded_and_nothing_is_written(outcome):
    folder, _, report = outcome
    assert report["grown"] < 300 << 20, report["grown"]  # unbounded: gigabytes
    assert list((folder / "out").iterdir()) == []  # no output, no temporary file


def test_a_real_backbone_pickle_is_well_within_the_limits(tmp_path):
    """The bounds leave room: a whole tf_efficientnet_b2 and its state dict read as before."""
    import timm

    from fer3d_bench.weights.limits import PickleScan, check_torch_file

    model = timm.create_model("tf_efficientnet_b2", pretrained=False)
    torch.save(model, tmp_path / "b2.pt")
    check_torch_file(tmp_path / "b2.pt")
    with zipfile.ZipFile(tmp_path / "b2.pt") as archive:
        pickle = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    scan = PickleScan(tmp_path / "b2.pt")
    assert scan.read(pickle, 0) == len(pickle)
    assert scan.ops * 5 < MAX_PICKLE_OPS and len(pickle) * 10 < MAX_PICKLE_BYTES
    assert sum(scan.storages.values()) == sum(
        t.untyped_storage().nbytes() for t in model.state_dict().values()
    )
