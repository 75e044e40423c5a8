"""Damage from the attacker's side: bytes flipped inside one chunk of a copy of a merged file.

Every per-sample dataset carries a Fletcher-32 checksum per chunk (schema 1.2.0), so reading a
damaged sample fails with an error naming it, and `verify` names the first damaged sample; the
fingerprint catches what chunk checksums cannot (a 1.1.0 file, or data rewritten through HDF5).
"""

import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.build import LIBVER
from fer3d_bench.errors import DamagedData, MergedFileError

DAMAGED = 17  # the sample whose chunk is damaged


@pytest.fixture(scope="module")
def merged(tiny_merged):
    base, _, report = tiny_merged
    return base / "merged.h5", report


def damage(source, target, name, index=0):
    """A copy of `source` with 16 bytes changed in the middle of the chunk of `/name` that
    holds sample `index`; the chunk's place in the file comes from HDF5's own index."""
    shutil.copy(source, target)
    with h5py.File(target, "r") as h5:
        values = h5[name]
        first = index - index % values.chunks[0]  # the chunk's first element
        info = values.id.get_chunk_info_by_coord((first,) + (0,) * (values.ndim - 1))
    start = info.byte_offset + info.size // 2 - 8
    rng = np.random.default_rng(index)
    with open(target, "r+b") as f:
        f.seek(start)
        original = np.frombuffer(f.read(16), np.uint8)
        f.seek(start)
        f.write(
            (original ^ rng.integers(1, 256, 16, dtype=np.uint8)).tobytes()
        )  # every byte changes
    return target


def without_checksums(source, target):
    """The file as schema 1.1.0 wrote it: the same records, no checksums, columns contiguous."""
    with h5py.File(source, "r") as old, h5py.File(target, "w", libver=LIBVER) as new:
        for name, values in old.items():
            chunks = values.chunks if name in ("rgb", "depth") else None
            new.create_dataset(name, data=values[()], dtype=values.dtype, chunks=chunks)
        for key, value in old.attrs.items():
            new.attrs[key] = value
        new.attrs["schema_version"] = "1.1.0"
    return target


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_dataset_of_a_built_file_and_of_its_copy_is_checksummed(merged, tmp_path):
    path, _ = merged
    copy = tmp_path / "copy.h5"
    shutil.copy(path, copy)
    with h5py.File(copy, "r") as h5:
        assert h5.attrs["schema_version"] == "1.2.0"
        assert h5["rgb"].fletcher32 and h5["depth"].fletcher32
        assert h5["rgb"].chunks == (1, 48, 48, 3) and h5["depth"].chunks == (1, 48, 48)
        assert all(values.fletcher32 for values in h5.values())
    with H5Dataset(copy) as data:
        assert data.checksums


def test_a_clean_file_verifies(merged):
    path, report = merged
    result = run("verify", path)
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"OK {path}: 53 samples, schema 1.2.0, every chunk passed")
    assert line.endswith(f"fingerprint {report.fingerprint}")


@pytest.mark.parametrize("name", ["rgb", "depth"])
def test_verify_names_the_damaged_sample_and_reading_it_fails_while_others_read(
    merged, tmp_path, name
):
    path, _ = merged
    broken = damage(path, tmp_path / "broken.h5", name, DAMAGED)
    with H5Dataset(path) as clean:
        sample_id = clean.sample_ids[DAMAGED]
        neighbours = {i: clean[i] for i in (DAMAGED - 1, DAMAGED + 1)}

    result = run("verify", broken)
    assert result.exit_code == 1
    assert f"damaged: sample {DAMAGED} ({sample_id}) in /{name} fails its checksum" in result.output
    assert result.output.count("sample ") == 1 and "Traceback" not in result.output

    with H5Dataset(broken) as data:
        with pytest.raises(DamagedData) as caught:
            data[DAMAGED]
        message = str(caught.value)
        assert message.startswith(f"{broken}: sample {DAMAGED} ({sample_id}) in /{name} fails")
        assert f"run `fer3d-bench verify {broken}`" in message and "\n" not in message
        with pytest.raises(DamagedData, match=sample_id):
            data.by_id(sample_id)
        for index, expected in neighbours.items():
            np.testing.assert_array_equal(data[index].rgb, expected.rgb)
            np.testing.assert_array_equal(data[index].depth, expected.depth)


def test_a_damaged_column_is_named_on_read_and_by_verify(merged, tmp_path):
    path, _ = merged
    broken = damage(path, tmp_path / "broken.h5", "sources")
    with H5Dataset(broken) as data:  # /sources is not read on opening
        with pytest.raises(DamagedData, match=r"/sources fails its checksum.*fer3d-bench verify"):
            data.column("sources")
        assert data[0].sample_id == data.sample_ids[0]
    result = run("verify", broken)
    assert result.exit_code == 1 and "damaged: /sources fails its checksum" in result.output
    labels = damage(path, tmp_path / "labels.h5", "label")  # read on opening
    with pytest.raises(DamagedData, match="/label fails its checksum"):
        H5Dataset(labels)


def test_data_rewritten_through_hdf5_passes_its_checksums_but_not_the_fingerprint(merged, tmp_path):
    path, report = merged
    edited = tmp_path / "edited.h5"
    shutil.copy(path, edited)
    with h5py.File(edited, "a") as h5:
        h5["rgb"][DAMAGED] = 255 - h5["rgb"][DAMAGED]  # new pixels, new checksum
    result = run("verify", edited)
    assert result.exit_code == 1
    assert (
        f"damaged: fingerprint mismatch (stored {report.fingerprint}, recomputed" in result.output
    )


def test_a_schema_1_1_file_without_checksums_still_reads_and_verifies_by_fingerprint(
    merged, tmp_path
):
    path, report = merged
    old = without_checksums(path, tmp_path / "old.h5")
    with H5Dataset(path) as new, H5Dataset(old) as data:
        assert data.schema_version == "1.1.0" and not data.checksums
        np.testing.assert_array_equal(data[DAMAGED].rgb, new[DAMAGED].rgb)
        assert data.column("sources") == new.column("sources")
    result = run("verify", old)
    assert result.exit_code == 0, result.output
    assert (
        "schema 1.1.0, 1.1.0 file: no per-chunk checksums, only the fingerprint was checked; "
        f"fingerprint {report.fingerprint}"
    ) in result.output
    broken = damage(old, tmp_path / "broken.h5", "rgb", DAMAGED)
    with H5Dataset(broken) as data:
        data[DAMAGED]  # nothing in a 1.1.0 file can tell on reading
    result = run("verify", broken)
    assert result.exit_code == 1 and "damaged: fingerprint mismatch" in result.output


def test_files_that_are_not_merged_files_are_named_errors(merged, tmp_path):
    path, _ = merged
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as h5:
        h5["x"] = [1, 2]
    no_rgb = tmp_path / "no-rgb.h5"
    shutil.copy(path, no_rgb)
    with h5py.File(no_rgb, "a") as h5:
        del h5["rgb"]
    expected = {
        tmp_path / "absent.h5": "merged file not found",
        tmp_path: "merged file is a folder",
        garbage: "not an HDF5 file",
        truncated: "truncated or damaged, HDF5 cannot open it (",
        plain: "not a merged fer3d-bench file (no schema_version, classes, fingerprint attribute)",
        no_rgb: "no /rgb dataset: not a complete merged file",
    }
    for target, problem in expected.items():
        with pytest.raises(MergedFileError) as caught:
            H5Dataset(target)
        assert str(caught.value).startswith(f"{target}: {problem}")
        assert "\n" not in str(caught.value)
