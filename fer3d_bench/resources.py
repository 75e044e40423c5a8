"""Where the published protocols and split manifests are, in a wheel and in a source checkout.

The folders stay at the repository root (``protocols/``, ``data_manifests/``); pyproject.toml maps
them into the package, so an installed wheel holds them as ``fer3d_bench/protocols`` and
``fer3d_bench/data_manifests``, found here through importlib.resources. An editable install maps
them too, but its import hook cannot import a folder without ``__init__.py`` below a regular
package, so there (and when running from a plain checkout) they are read from the repository root.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fer3d_bench.errors import Fer3dError

PACKAGE = "fer3d_bench"
PROTOCOLS = "protocols"
MANIFESTS = "data_manifests"


def protocols_dir() -> Path:
    """The folder of the versioned protocol files (``<name>.toml``)."""
    return _data_dir(PROTOCOLS)


def manifests_dir() -> Path:
    """The folder of the published manifests (``<protocol>/<version>.json|.csv``, SHA256SUMS)."""
    return _data_dir(MANIFESTS)


def _data_dir(name: str) -> Path:
    """``name`` inside the installed package, else the checkout's top-level folder ``name``.

    Installed packages are plain directories, so ``files()`` gives a ``pathlib.Path`` that stays
    valid (``as_file`` of a Path is the Path itself, with nothing to clean up). A package imported
    from a zip archive would need its folders extracted to a temporary copy: not supported.
    """
    packaged = files(PACKAGE).joinpath(name)
    if not isinstance(packaged, Path):
        raise Fer3dError(
            f"{PACKAGE} is imported from an archive ({packaged}); install it into a directory "
            f"(pip install) to read its {name}"
        )
    if packaged.is_dir():
        return packaged
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / name).is_dir():
        return root / name  # editable install or source checkout
    return packaged  # missing: the callers' errors then name the path where it belongs
