"""A built wheel ships the protocols and published manifests, and an installed copy reads them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
# The subprocess drops its first argument, the install folder, after checking that fer3d_bench
# is imported from there; the rest of the command line goes to the cli.
FROM_SITE = (
    "import sys; from pathlib import Path; import fer3d_bench; "
    "site = Path(sys.argv.pop(1)); "
    "assert Path(fer3d_bench.__file__).is_relative_to(site), fer3d_bench.__file__; "
)


def _copy_sources(target: Path) -> None:
    """What the build needs, so that pip's in-tree build leaves nothing in the repository."""
    target.mkdir()
    for pattern in ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README*", "LICEN*"):
        for path in REPO.glob(pattern):
            shutil.copy2(path, target / path.name)
    for name in ("fer3d_bench", "protocols", "data_manifests"):
        shutil.copytree(
            REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_ships_protocols_and_manifests(tmp_path):
    source, wheels, site = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    _copy_sources(source)
    _run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(wheels)],
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("fer3d_bench-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        listed = set(archive.namelist())
    data = [
        *REPO.glob("protocols/*.toml"),
        *REPO.glob("protocols/*.md"),
        *REPO.glob("data_manifests/**/*.json"),
        *REPO.glob("data_manifests/**/*.csv"),
        *REPO.glob("data_manifests/*.md"),
        REPO / "data_manifests" / "SHA256SUMS",
    ]
    expected = {f"fer3d_bench/{p.relative_to(REPO).as_posix()}" for p in data}
    assert {
        "fer3d_bench/protocols/bu3dfe-legacy.toml",
        "fer3d_bench/data_manifests/SHA256SUMS",
    } <= expected
    assert expected - listed == set()
    # Package discovery goes through the package-dir mapping: every module must still be found.
    modules = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "fer3d_bench").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules - listed == set(), "pyproject.toml: a module is left out"

    _run(
        [*PIP, "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        cwd=tmp_path,
    )
    assert not (site / "protocols").exists() and not (site / "data_manifests").exists()
    env = {**os.environ, "PYTHONPATH": str(site)}
    python = [sys.executable, "-c"]

    report = FROM_SITE + (
        "import json; from fer3d_bench import splits as sp; "
        "print(json.dumps([str(sp.PROTOCOLS_DIR), str(sp.MANIFESTS_DIR), "
        "sp.load_protocol('bu3dfe-legacy').version]))"
    )
    protocols, manifests, version = json.loads(_run([*python, report, str(site)], tmp_path, env))
    assert Path(protocols) == site / "fer3d_bench" / "protocols"
    assert Path(manifests) == site / "fer3d_bench" / "data_manifests"
    assert version == "1.0.0"

    cli = FROM_SITE + "from fer3d_bench.cli import main; main()"
    for name in ("bu3dfe-legacy", "bu3dfe-full"):
        manifest = Path(manifests) / name / "1.0.0.json"
        out = _run([*python, cli, str(site), "splits", "show", str(manifest)], tmp_path, env)
        title, header, *rows = out.splitlines()
        assert title.startswith(f"{name} 1.0.0 (kfold), repetition 0 (the 1st of "), out
        assert header.split()[:2] == ["fold", "subjects"] and header.split()[-1] == "total", out
        assert len(rows) >= 5 and rows[0].split()[0] == "0", out
