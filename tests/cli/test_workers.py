"""Worker processes are capped by the CPUs available and by memory, and the cap is said once:
render-depth, build-dataset and make-sample (`--workers`) and evaluate's pool (`--jobs`)."""

import shutil
from concurrent.futures import ProcessPoolExecutor

import pytest
from click.testing import CliRunner

from fer3d_bench import workers
from fer3d_bench.cli import main
from fer3d_bench.evaluation import pool
from fer3d_bench.render import run as render_run
from fer3d_bench.workers import GIB, cap_workers

MEMINFO = "MemTotal:       65000000 kB\nMemAvailable:   {kb} kB\nSwapTotal: 0 kB\n"


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine described by hand: `machine(cpus, available_gib, cgroup=...)`; the cgroup
    files (path -> text, below a fake /sys/fs/cgroup) and /proc files are written here."""

    def describe(cpus, available_gib, cgroup_line="0::/", files=None):
        folder = tmp_path / f"machine-{len(list(tmp_path.iterdir()))}"  # a fresh one each time
        (folder / "sys").mkdir(parents=True)
        monkeypatch.setattr(workers, "allocated_cpus", lambda: cpus)
        (folder / "meminfo").write_text(MEMINFO.format(kb=int(available_gib * 2**20)))
        (folder / "cgroup").write_text(cgroup_line + "\n")
        for name, text in (files or {}).items():
            (folder / "sys" / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / "sys" / name).write_text(text)
        monkeypatch.setattr(workers, "_MEMINFO", folder / "meminfo")
        monkeypatch.setattr(workers, "_OWN_CGROUP", folder / "cgroup")
        monkeypatch.setattr(workers, "_CGROUP", folder / "sys")

    return describe


def test_the_cpus_cap_the_workers_and_say_so(machine):
    machine(cpus=2, available_gib=64)
    assert cap_workers(64, GIB) == (2, "--workers 64: using 2 (2 CPUs available)")
    assert cap_workers(2, GIB) == (2, None)
    assert cap_workers(1, GIB) == (1, None)
    machine(cpus=1, available_gib=64)
    assert cap_workers(3, GIB, "--jobs") == (1, "--jobs 3: using 1 (1 CPU available)")


def test_memory_caps_the_workers_and_never_below_one(machine):
    machine(cpus=16, available_gib=3.5)
    sentence = "--workers 8: using 3 (3.5 GiB of memory available, about 1.0 GiB per worker)"
    assert cap_workers(8, GIB) == (3, sentence)
    machine(cpus=16, available_gib=0.2)
    assert cap_workers(8, GIB)[0] == 1


def test_a_cgroup_v2_quota_and_memory_limit_count(machine):
    files = {
        "job/cpu.max": "150000 100000\n",  # one and a half CPUs: two processes may run
        "job/memory.max": f"{3 * GIB}\n",
        "job/memory.current": f"{2 * GIB}\n",  # half a GiB of it page cache that can go
        "job/memory.stat": f"anon 1\ninactive_file {GIB // 2}\n",
    }
    machine(cpus=64, available_gib=500, cgroup_line="0::/job", files=files)
    assert workers.available_cpus() == 2
    assert workers.available_memory() == GIB + GIB // 2
    assert cap_workers(8, GIB // 2)[0] == 2
    machine(cpus=64, available_gib=500, files={"cpu.max": "max 100000\n"})  # no quota
    assert workers.available_cpus() == 64


def test_a_cgroup_v1_quota_and_memory_limit_count(machine):
    files = {
        "cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "memory/box/memory.limit_in_bytes": f"{4 * GIB}\n",
        "memory/box/memory.usage_in_bytes": f"{GIB}\n",
        "memory/box/memory.stat": "total_inactive_file 0\n",
    }
    line = "5:cpu,cpuacct:/\n4:memory:/box\n0::/"
    machine(cpus=8, available_gib=100, cgroup_line=line, files=files)
    assert workers.available_cpus() == 3
    assert workers.available_memory() == 3 * GIB
    machine(cpus=8, available_gib=100, cgroup_line="4:memory:/box", files={})
    assert workers.available_cpus() == 8 and workers.available_memory() == 100 * GIB


class Spy(ProcessPoolExecutor):
    """A ProcessPoolExecutor that records how many processes it was allowed."""

    sizes: list[int] = []

    def __init__(self, max_workers=None, *args, **kwargs):
        Spy.sizes.append(max_workers)
        super().__init__(max_workers, *args, **kwargs)


def test_render_depth_runs_at_most_the_cap_and_says_so(machine, tiny_sample, tmp_path, monkeypatch):
    """--workers 64 on two CPUs: said once, and this process renders beside one helper."""
    machine(cpus=2, available_gib=64)
    _, roots = tiny_sample
    root = tmp_path / "bu3dfe"
    (root / "F0001").mkdir(parents=True)
    for code in ("NE00", "AN01"):
        for path in (roots["bu3dfe"] / "F0001").glob(f"F0001_{code}*"):
            shutil.copy(path, root / "F0001" / path.name)
    monkeypatch.setattr(render_run, "ProcessPoolExecutor", Spy)
    Spy.sizes = []
    args = ["render-depth", root, "--dataset", "bu3dfe", "--out", tmp_path / "out", "--size", 32]
    result = CliRunner(env={"FER3D_PROGRESS": "off"}).invoke(
        main, [*map(str, args), "--workers", "64"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "--workers 64: using 2 (2 CPUs available)"
    assert result.stdout.count("--workers 64") == 1
    assert Spy.sizes == [1]


def test_make_sample_is_capped_too(machine, tmp_path, monkeypatch):
    machine(cpus=2, available_gib=64)
    asked = []

    def generate(out, config, workers, overwrite):
        asked.append(workers)
        return {}

    monkeypatch.setattr("fer3d_bench.cli.data.generate", generate)
    result = CliRunner().invoke(main, ["make-sample", str(tmp_path / "s"), "--workers", "64"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "--workers 64: using 2 (2 CPUs available)"
    assert asked == [2]


def test_the_evaluation_pool_is_capped_and_says_so(machine, monkeypatch):
    machine(cpus=2, available_gib=64)
    monkeypatch.setattr(pool, "ProcessPoolExecutor", Spy)
    Spy.sizes, lines = [], []
    assert pool.run_pool([], 64, progress=False, echo=lines.append) == []
    assert Spy.sizes == [2]
    assert lines == ["--jobs 64: using 2 (2 CPUs available)"]
