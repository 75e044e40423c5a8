"""Bounds on the work a weight file from others may ask for, checked before torch reads it.

A torch file is a zip archive (torch >= 1.6) or the older stream of pickles followed by raw
storages. Either can be small on disk and still ask for much: a deflated member that inflates
to gigabytes, a central directory of millions of entries, a pickle of millions of operations,
a storage that declares far more elements than the file holds (torch allocates what the older
format declares before reading it). Everything here reads only bytes: the pickles are walked
with `pickletools.genops` (which decodes opcodes and runs nothing), tracking just enough of the
stack to read each storage's declared size. No torch here, so `known` may use it too.

The limits are five times or more what the backbones the toolkit supports need (a whole
tf_efficientnet_b2 saved by torch is 37 MB of about 700 records, its pickle 157 KB of 66,000
operations, its module tree 6 levels deep), and far below what would hurt a login node.
"""

from __future__ import annotations

import io
import pickletools
import struct
import tarfile
import zipfile
from pathlib import Path

from fer3d_bench.errors import FileError
from fer3d_bench.io import regular_file
from fer3d_bench.weights.errors import WeightsError

MAX_FILE_BYTES = 256 << 20  # the file, and everything in a zip archive once unpacked
MAX_PICKLE_BYTES = 8 << 20  # one pickle (data.pkl, or the older format's pickles together)
MAX_PICKLE_OPS = 500_000  # pickle operations in all: each builds at most one object
MAX_ZIP_ENTRIES = 10_000  # members of a torch archive (one per storage, and a few more)
MAX_ZIP_DIRECTORY = 4 << 20  # bytes of its central directory, read whole by every zip reader
MAX_SAFETENSORS_HEADER = 8 << 20  # a safetensors file's JSON header (a B2's is 40 KB)
# recovering the tensors of a pickled module tree (legacy.py): modules, parameters and buffers
# looked at (a B2 has about 1,100), nesting (6), and the length of a dotted name (under 40)
MAX_ENTRIES = 100_000
MAX_DEPTH = 64  # also the most checkpoint wrappers ({"state_dict": ...}) around the weights
MAX_NAME = 512

# bytes per element of torch's storage types; another type counts as the widest (16)
_ITEM_BYTES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "UntypedStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}
_WIDEST = 16


def checked_file(path: Path | str, what: str = "weights file") -> Path:
    """`path`, a regular file (not a FIFO, device or folder) of at most MAX_FILE_BYTES."""
    try:
        return regular_file(path, what=what, max_bytes=MAX_FILE_BYTES)
    except FileError as err:
        raise WeightsError(err.path, err.problem) from None


def check_torch_file(path: Path) -> None:
    """Refuse, naming the file, a torch file whose reading would exceed the limits above.

    Called before every `torch.load` of a file from others (safe or trusted alike): the checks
    read only bytes, in time and memory bounded by the limits themselves.
    """
    path = checked_file(path)
    size = path.stat().st_size
    with open(path, "rb") as stream:
        # torch takes a file for an archive by its first bytes, a zip's local header (not by
        # the end record zipfile.is_zipfile looks for): so must the checks, or an archive
        # appended to the older format would be checked in its place
        if stream.read(4) == b"PK\x03\x04":
            _check_archive(path, stream, size)
            return
        stream.seek(0)
        if tarfile.is_tarfile(stream):
            raise WeightsError(path, "a tar archive (torch's format before 0.4), which is not read")
        stream.seek(0)
        head = stream.read(MAX_PICKLE_BYTES)
    # the older format: five pickles (magic number, protocol, system info, the object, the
    # storage keys), then each storage's bytes; together they must fit in MAX_PICKLE_BYTES
    scan = PickleScan(path)
    end: int | None = 0
    for _ in range(5):
        end = scan.read(head, end)
        if end is None:
            break
    scan.check_storages(size)


def _check_archive(path: Path, stream, size: int) -> None:
    entries, directory = _zip_directory(stream, size)
    if entries > MAX_ZIP_ENTRIES or directory > MAX_ZIP_DIRECTORY:
        raise WeightsError(
            path,
            f"a zip archive of {entries:,} members ({directory:,} bytes of directory); "
            f"refusing more than {MAX_ZIP_ENTRIES:,} members or {MAX_ZIP_DIRECTORY:,} bytes",
        )
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise WeightsError(path, f"a damaged zip archive ({err})") from None
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_FILE_BYTES:
        raise WeightsError(
            path,
            f"unpacks to {unpacked:,} bytes ({size:,} on disk); "
            f"refusing more than {MAX_FILE_BYTES:,} bytes",
        )
    scan = PickleScan(path)
    for member in members:
        if not member.filename.endswith(".pkl"):
            continue
        if member.file_size > MAX_PICKLE_BYTES:
            raise WeightsError(
                path,
                f"its pickle {member.filename} is {member.file_size:,} bytes; refusing more "
                f"than {MAX_PICKLE_BYTES:,} bytes",
            )
        try:
            with archive.open(member) as pickled:
                data = pickled.read(MAX_PICKLE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise WeightsError(path, f"a damaged zip archive ({err})") from None
        scan.read(data, 0)
    scan.check_storages(unpacked)


def _zip_directory(stream, size: int) -> tuple[int, int]:
    """(members, central directory bytes) as the end records say, before any zip reader reads
    the directory whole. The end record is the last 22 bytes, or ends a comment of up to 64 KiB;
    a ZIP64 end record, when its locator precedes, overrides it (as Python's and torch's readers
    do)."""
    tail_start = max(0, size - (22 + 0xFFFF))
    stream.seek(tail_start)
    tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return 0, 0  # is_zipfile said yes; zipfile itself will refuse it
    # after the signature: disk, directory's disk, members on this disk, members, size, offset
    entries, directory = struct.unpack("<6xHI4x", tail[at + 4 : at + 20])
    locator = at - 20
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        if offset < size:
            stream.seek(offset)
            record = stream.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, directory = struct.unpack("<QQ", record[32:48])
    return entries, directory


class _Mark:
    """The MARK opcode's place on the simulated stack."""


_MARK, _UNKNOWN = _Mark(), object()  # _UNKNOWN: a value the scan does not follow


class _Global(str):
    """A global a pickle names ("torch FloatStorage"), as a value on the simulated stack."""


# opcodes that push their argument as a plain value
_LITERALS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "BINUNICODE",
    "SHORT_BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


class PickleScan:
    """Walks the opcodes of one or more pickles, counting them and following the stack just
    far enough to read what each persistent id (torch's reference to a storage) declares."""

    def __init__(self, path: Path):
        self.path = path
        self.ops = 0
        self.storages: dict[object, int] = {}  # storage key -> declared bytes

    def read(self, data: bytes, start: int) -> int | None:
        """Scan the pickle at `data[start:]`; its end offset, or None where the bytes stop being
        a pickle: an unpickler stops at the same opcode, so torch is left to refuse the file
        with its own words. A pickle that runs past MAX_PICKLE_BYTES is refused here."""
        stream = io.BytesIO(data)
        stream.seek(start)
        stack: list = []
        memo: dict = {}
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                self.ops += 1
                if self.ops > MAX_PICKLE_OPS:
                    raise WeightsError(
                        self.path,
                        f"its pickle holds more than {MAX_PICKLE_OPS:,} operations; refused "
                        "(a whole tf_efficientnet_b2 holds 66,000)",
                    )
                self._step(opcode, arg, stack, memo)
        except WeightsError:
            raise
        except Exception:  # genops raises ValueError and others for what is no pickle, and so
            # does the scan for an opcode that finds the stack empty or a MARK in its way:
            # an unpickler fails at that same opcode, having run no further than the scan
            if len(data) >= MAX_PICKLE_BYTES:
                raise WeightsError(
                    self.path, f"holds a pickle longer than {MAX_PICKLE_BYTES:,} bytes"
                ) from None
            return None
        return stream.tell()

    def _step(self, opcode, arg, stack: list, memo: dict) -> None:
        name = opcode.name
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = _pop(stack, 1)[0]
            stack.append(memo[arg])
        elif name == "MEMOIZE":
            memo[len(memo)] = _pop(stack, 1)[0]
            stack.append(memo[len(memo) - 1])
        elif name == "POP" and stack and stack[-1] is _MARK:
            stack.pop()  # as the unpicklers do: POP right after MARK drops the mark
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg, _UNKNOWN))
        elif name == "GLOBAL":
            stack.append(_Global(arg))
        elif name == "STACK_GLOBAL":
            module, attribute = _pop(stack, 2)
            stack.append(_Global(f"{module} {attribute}"))
        elif name in ("TUPLE", "EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            count = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(name)
            stack.append(tuple(_to_mark(stack) if count is None else _pop(stack, count)))
        elif name in ("PERSID", "BINPERSID"):
            self._storage(arg if name == "PERSID" else _pop(stack, 1)[0])
            stack.append(_UNKNOWN)
        elif name in _LITERALS or name in _CONSTANTS:
            stack.append(_CONSTANTS.get(name, arg))
        else:  # any other opcode: its documented stack effect, values not followed
            before = opcode.stack_before
            if pickletools.markobject in before:
                _to_mark(stack)
                _pop(stack, before.index(pickletools.markobject))
            else:
                _pop(stack, len(before))
            stack.extend(_UNKNOWN for _ in opcode.stack_after)

    def _storage(self, pid: object) -> None:
        """Record a storage's declared size: `("storage", type, key, location, numel[, view])`;
        torch's older format also names module classes (`("module", ...)`), which hold none."""
        kind = pid[0] if isinstance(pid, tuple) and pid else None
        kind = kind.decode("ascii", "replace") if isinstance(kind, bytes) else kind
        if kind == "module":
            return
        if kind != "storage" or len(pid) not in (5, 6):
            problem = f"its pickle refers to data it does not describe ({kind!r})"
            raise WeightsError(self.path, problem)
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise WeightsError(self.path, "its pickle refers to a storage of unreadable size")
        if not isinstance(key, str | bytes | int):
            raise WeightsError(self.path, "its pickle refers to a storage by an unreadable key")
        item = _ITEM_BYTES.get(str(storage_type).rpartition(" ")[2], _WIDEST)
        self.storages[key] = max(self.storages.get(key, 0), numel * item)

    def check_storages(self, available: int) -> None:
        """Refuse storages that declare more bytes than the file holds (or unpacks to): torch
        allocates what the older format declares before reading it."""
        declared = sum(self.storages.values())
        if declared > available:
            raise WeightsError(
                self.path,
                f"its pickle declares {declared:,} bytes of tensors; the file holds {available:,}",
            )


def _pop(stack: list, count: int) -> list:
    if count == 0:
        return []
    if len(stack) < count or any(item is _MARK for item in stack[-count:]):
        raise ValueError("stack underflow")
    items = stack[-count:]
    del stack[-count:]
    return items


def _to_mark(stack: list) -> list:
    """Pop the items down to the last MARK, and the MARK."""
    for at in range(len(stack) - 1, -1, -1):
        if stack[at] is _MARK:
            items = stack[at + 1 :]
            del stack[at:]
            return items
    raise ValueError("no MARK on the stack")
