"""Names that become parts of paths: one pattern, checked once, where a name is read.

A protocol name, a protocol or manifest version and a variant name each become a folder or
file name (`data_manifests/<protocol>/<version>.json`, `runs/NAME/<protocol>/...`,
`ablation-<variant>/`). They come from files other people wrote, so each is checked against
this pattern when it is read, before any path is made of it: no separator, no `..`, no leading
dot, nothing a shell or a file system treats specially.
"""

from __future__ import annotations

import re

from fer3d_bench.errors import Fer3dError

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # protocol and variant names
VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")


class UnsafeName(Fer3dError):
    """A name or version read from a file or an option cannot safely become a path."""


def checked_name(value: object, what: str, source: object = None) -> str:
    """`value` if it is a safe name (lower-case letters, digits, '-', '_'), else UnsafeName."""
    return _checked(value, NAME, what, source, "lower-case letters, digits, '-' and '_'")


def checked_version(value: object, what: str, source: object = None) -> str:
    """`value` if it is a plain semantic version (MAJOR.MINOR.PATCH), else UnsafeName."""
    return _checked(value, VERSION, what, source, "a version MAJOR.MINOR.PATCH, digits only")


def _checked(value, pattern: re.Pattern, what: str, source, rule: str) -> str:
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    where = f"{source}: " if source is not None else ""
    raise UnsafeName(f"{where}{what} {value!r} is not allowed: it must be {rule}")
