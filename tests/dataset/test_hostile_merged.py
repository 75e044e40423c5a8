"""Merged files made hostile or broken with h5py, from the attacker's and the clumsy user's side.

Each case edits a copy of the tiny merged file: pixels that live in another file (an external
or soft link, a virtual dataset, external raw storage), checksums dropped from a file whose
schema promises them, attributes and columns of the wrong type, range or length. The reader
refuses each with one `MergedFileError` naming the file, the field and what was expected, before
any pixel is read; `verify` and `inspect` print that one line, exit 1 and write nothing.
"""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import MergedFileError

CHUNK = (1, 48, 48, 3)  # one sample of the tiny file's /rgb


@pytest.fixture(scope="module")
def merged(tiny_merged):
    return tiny_merged[0] / "merged.h5"


def replace(h5, name, **storage):
    """`/name` written again with the same values and `storage` (chunks, fletcher32...)."""
    values = h5[name][()]
    del h5[name]
    h5.create_dataset(name, data=values, **storage)


def elsewhere(folder, values):
    """A second file holding `values` as a checksummed /rgb, as the builder stores it."""
    other = folder / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("rgb", data=values, chunks=CHUNK, fletcher32=True)
    return other


def external_link(h5, folder):
    other = elsewhere(folder, h5["rgb"][()])
    del h5["rgb"]
    h5["rgb"] = h5py.ExternalLink(str(other), "/rgb")


def external_link_claiming_1_1(h5, folder):
    external_link(h5, folder)
    h5.attrs["schema_version"] = "1.1.0"  # a file without checksums is no way round it


def soft_link(h5, folder):
    h5["pixels"] = h5["rgb"]  # a second name for the same dataset, then a link to it
    del h5["rgb"]
    h5["rgb"] = h5py.SoftLink("/pixels")


def virtual(h5, folder):
    values = h5["rgb"][()]
    other = elsewhere(folder, values)
    layout = h5py.VirtualLayout(shape=values.shape, dtype=values.dtype)
    layout[:] = h5py.VirtualSource(str(other), "rgb", shape=values.shape)
    del h5["rgb"]
    h5.create_virtual_dataset("rgb", layout)


def external_storage(h5, folder):
    values = h5["rgb"][()]
    raw = folder / "rgb.raw"
    raw.write_bytes(values.tobytes())
    del h5["rgb"]
    h5.create_dataset("rgb", values.shape, values.dtype, external=[(str(raw), 0, values.nbytes)])


def unchecksummed(name, **storage):
    return lambda h5, folder: replace(h5, name, **storage)


def attribute(key, value):
    def edit(h5, folder):
        h5.attrs[key] = value

    return edit


def cell(name, row, value):
    def edit(h5, folder):
        h5[name][row] = value  # through HDF5: the chunk gets a new, valid checksum

    return edit


def short(name):
    def edit(h5, folder):
        values = h5[name][()][:-1]
        del h5[name]
        h5.create_dataset(name, data=values, fletcher32=True)

    return edit


def group(h5, folder):
    h5.create_group("extra")


def float_rgb(h5, folder):
    values = h5["rgb"][()].astype(np.float32)
    del h5["rgb"]
    h5.create_dataset("rgb", data=values, chunks=CHUNK, fletcher32=True)


def twice(h5, folder):
    h5["sample_id"][5] = h5["sample_id"][4]


OTHER = "expected a plain dataset whose bytes lie in this file"
CLASSES = '["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]'
# case -> (edit, the problem the one line names; the column whose reading fails, None: opening)
CASES = {
    "external-link": (external_link, "/rgb is an external link to '{folder}/other.h5:/rgb'; "),
    "external-link-1.1": (external_link_claiming_1_1, "/rgb is an external link to "),
    "soft-link": (soft_link, f"/rgb is a soft link to '/pixels'; {OTHER}"),
    "virtual": (virtual, f"/rgb is a virtual dataset; {OTHER}"),
    "external-storage": (
        external_storage,
        f"/rgb keeps its bytes in external storage ('{{folder}}/rgb.raw'); {OTHER}",
    ),
    "rgb-contiguous": (
        unchecksummed("rgb"),
        "/rgb is stored contiguous; expected checksummed chunks: a schema 1.2.0 file has a "
        "Fletcher-32 checksum on every chunk of every dataset",
    ),
    "rgb-unchecksummed-chunks": (
        unchecksummed("rgb", chunks=CHUNK),
        "/rgb is stored chunked without Fletcher-32; expected checksummed chunks",
    ),
    "label-contiguous": (unchecksummed("label"), "/label is stored contiguous; expected"),
    "classes-not-json": (
        attribute("classes", "anger, disgust"),
        f"attribute classes is 'anger, disgust'; expected the JSON list of the 7 classes {CLASSES}",
    ),
    "classes-other-list": (
        attribute("classes", json.dumps(["a", "b"])),
        'attribute classes is \'["a", "b"]\'; expected the JSON list of the 7 classes',
    ),
    "classes-nested-json": (
        attribute("classes", "[" * 100_000 + "]" * 100_000),
        "attribute classes is '[[[[",
    ),
    "classes-a-number": (
        attribute("classes", 7),
        "attribute classes is np.int64(7); expected text",
    ),
    "classes-an-array": (
        attribute("classes", np.array(["anger", "fear"], dtype="S5")),
        "attribute classes is an array (2,); expected text",
    ),
    "schema-version-garbage": (
        attribute("schema_version", "one"),
        "attribute schema_version is 'one'; expected a version like 1.2.0",
    ),
    "fingerprint-short": (
        attribute("fingerprint", "abc"),
        "attribute fingerprint is 'abc'; expected 64 hexadecimal digits",
    ),
    "label-too-high": (
        cell("label", 3, 7),
        "/label of sample 3 (bosphorus:bs000_E_HAPPY_0) is 7; expected an index from 0 to 6 "
        "into the classes attribute",
    ),
    "label-negative": (
        cell("label", 0, -1),
        "/label of sample 0 (bosphorus:bs000_E_ANGER_0) is -1",
    ),
    "sex-one-row-short": (
        short("sex"),
        "/sex is (52,) |S1; expected (53,) text, one per sample as in /rgb",
    ),
    "label-one-row-short": (short("label"), "/label is (52,) int8; expected (53,) integers"),
    "depth-one-row-short": (
        short("depth"),
        "/depth is (52, 48, 48) uint16; expected (53, 48, 48) uint16 like /rgb",
    ),
    "rgb-as-floats": (float_rgb, "/rgb is (53, 48, 48, 3) float32; expected (samples, S, S, 3)"),
    "group": (group, f"/extra is a group; {OTHER}"),
    "sample-id-twice": (
        twice,
        "/sample_id of row 5 repeats row 4's id 'bosphorus:bs000_E_SADNESS_0'; expected unique",
    ),
    "sample-id-of-another-dataset": (
        cell("sample_id", 2, b"bu3dfe:x"),
        "/sample_id of row 2 is 'bu3dfe:x'; expected bosphorus:NAME",
    ),
    "status-unknown": (
        cell("status", 1, b"great"),
        "/status of sample 1 (bosphorus:bs000_E_DISGUST_0) has status 'great'; expected 'ok' or "
        "'low-quality'",
    ),
    "dataset-empty": (cell("dataset", 0, b""), "/dataset of row 0 is empty; expected a name"),
    "alignment-a-list": (
        cell("alignment", 0, b"[1, 2]"),
        "/alignment of sample 0 (bosphorus:bs000_E_ANGER_0) is a JSON list; expected a JSON object",
        "alignment",
    ),
    "intensity-below-none": (
        cell("intensity", 4, -3),
        "/intensity of sample 4 (bosphorus:bs000_E_SADNESS_0) is -3; expected -1 (none) or more",
        "intensity",
    ),
}


def hostile(merged, folder, edit):
    path = folder / "merged.h5"
    shutil.copy(merged, path)
    with h5py.File(path, "a") as h5:
        edit(h5, folder)
    return path


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_or_broken_file_is_one_named_error_everywhere(merged, tmp_path, case):
    edit, problem, *column = CASES[case]
    path = hostile(merged, tmp_path, edit)
    expected = f"{path}: {problem.format(folder=tmp_path)}"
    if column:
        with H5Dataset(path) as data, pytest.raises(MergedFileError) as caught:
            data.column(column[0])
    else:
        with pytest.raises(MergedFileError) as caught:
            H5Dataset(path)
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)

    before = listing(tmp_path)
    figures = tmp_path / "figures"
    for args in (["verify", path], ["inspect", path, "--figures", figures]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        lines = result.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), result.output
        assert "OK" not in result.output and "Traceback" not in result.output
    assert listing(tmp_path) == before  # no figures folder, no picture, nothing else


def test_linked_pixels_equal_the_real_ones_so_only_the_refusal_stops_them(merged, tmp_path):
    """The external link leads to the very pixels the fingerprint was computed on: before the
    refusal, verify read them through the link and reported OK."""
    path = hostile(merged, tmp_path, external_link)
    with h5py.File(merged, "r") as h5, h5py.File(path, "r") as linked:
        np.testing.assert_array_equal(linked["rgb"][()], h5["rgb"][()])
        assert linked.attrs["fingerprint"] == h5.attrs["fingerprint"]


def cli(*args, timeout=60):
    """The command in a process of its own: a reader that blocked on a FIFO fails the test by
    timing out instead of hanging it."""
    return subprocess.run(
        [sys.executable, "-m", "fer3d_bench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifos_are_refused_without_being_opened(merged, tmp_path):
    fifo = tmp_path / "merged.h5"
    os.mkfifo(fifo)
    result = cli("verify", fifo)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: {fifo}: merged file is not a regular file\n"

    # an external link whose target is a FIFO: never followed, so nothing blocks on it
    linked = tmp_path / "linked.h5"
    shutil.copy(merged, linked)
    os.mkfifo(tmp_path / "pipe.h5")
    with h5py.File(linked, "a") as h5:
        del h5["rgb"]
        h5["rgb"] = h5py.ExternalLink(str(tmp_path / "pipe.h5"), "/rgb")
    result = cli("verify", linked)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"error: {linked}: /rgb is an external link to '")
    assert result.stderr.count("\n") == 1


def test_a_schema_1_1_file_needs_no_checksums_but_a_1_2_file_does(merged, tmp_path):
    """Chunks without checksums are what a 1.1.0 file has: read, and verified by fingerprint.
    The same storage under the version that promises checksums is refused."""
    path = tmp_path / "old.h5"
    shutil.copy(merged, path)
    with h5py.File(path, "a") as h5:
        for name in list(h5):
            replace(h5, name, chunks=h5[name].chunks)
        h5.attrs["schema_version"] = "1.1.0"
    result = run("verify", path)
    assert result.exit_code == 0, result.output
    assert "schema 1.1.0, 1.1.0 file: no per-chunk checksums" in result.output
    with h5py.File(path, "a") as h5:
        h5.attrs["schema_version"] = "1.2.0"
    result = run("verify", path)
    assert result.exit_code == 1
    assert "/alignment is stored chunked without Fletcher-32; expected" in result.output
