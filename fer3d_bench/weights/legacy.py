"""Recover the tensors of a whole-model pickle without importing or running anything it names.

A `torch.save(model)` file names every class of the model by the module path of the library
version that wrote it (timm 0.4.x for the HSEmotion files): loading it normally needs that
version, and runs whatever callables the pickle names. Here every global but the few needed to
rebuild tensors becomes an inert stand-in that only records what it was given, so nothing from
the file is imported or called; the tensors are then read off the recorded module tree.
"""

from __future__ import annotations

import collections
import pickle
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch._utils
from torch import Tensor

from fer3d_bench.weights.errors import WeightsError
from fer3d_bench.weights.limits import MAX_DEPTH, MAX_ENTRIES, MAX_NAME, check_torch_file

# The only globals a pickle gets for real: they rebuild tensors from the file's own storages
# (torch resolves storage types itself before asking the unpickler).
ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class StandIn:
    """An object of a class the pickle named: records its arguments, state and items, runs
    nothing. Used for classes (NEWOBJ, BUILD) and for any other callable (REDUCE) alike, so a
    `__reduce__` payload such as `(exec, (...))` only builds another stand-in."""

    origin = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj._args, obj._state, obj._items, obj._list = args, None, {}, []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self._state = state

    def __setitem__(self, key, value):
        self._items[key] = value

    def append(self, value):
        self._list.append(value)

    def extend(self, values):
        self._list.extend(values)

    def __repr__(self):
        return f"<stand-in for {self.origin}>"


@dataclass
class Legacy:
    root: object  # what the pickle held, stand-ins in place of its objects
    names: list[str] = field(default_factory=list)  # every global it named, in order


def load_legacy(path: Path) -> Legacy:
    """Unpickle `path` (a torch zip or legacy file) with stand-ins; tensors come back real.
    The file is checked against the limits first (limits.check_torch_file)."""
    path = Path(path)
    check_torch_file(path)
    if zipfile.is_zipfile(path) and any(
        n.endswith("/constants.pkl") for n in zipfile.ZipFile(path).namelist()
    ):
        raise WeightsError(path, "a TorchScript archive, not a pickled model")
    result = Legacy(root=None)
    classes: dict[tuple[str, str], type] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            result.names.append(f"{module}.{name}")
            if (module, name) in ALLOWED:
                return ALLOWED[module, name]
            if (module, name) not in classes:
                origin = {"origin": f"{module}.{name}"}
                classes[module, name] = type(name, (StandIn,), origin)
            return classes[module, name]

    stand_in_pickle = types.ModuleType("fer3d_bench_stand_in_pickle")
    stand_in_pickle.Unpickler = Unpickler
    stand_in_pickle.load = lambda stream, **kw: Unpickler(stream, **kw).load()
    try:
        result.root = torch.load(
            path, map_location="cpu", pickle_module=stand_in_pickle, weights_only=False
        )
    except Exception as err:  # a damaged or foreign file: many error types, one meaning
        raise WeightsError(path, f"cannot be read as a torch file ({err})") from err
    return result


def tensors_of(root: object, path: Path) -> dict[str, Tensor]:
    """`name -> tensor` as `state_dict()` would name them, from a recorded module tree, a state
    dict, or a checkpoint that wraps either under `state_dict`/`model`/`state_dict_ema`.

    The pickle built the tree, so it may be anything: wrappers nested without end or in a
    cycle, modules shared by many parents (a few kilobytes can then name more paths than there
    are atoms). The walk is bounded (MAX_DEPTH, MAX_ENTRIES, MAX_NAME) and refuses what exceeds
    it.
    """
    for _ in range(MAX_DEPTH):
        wrapper = _wrapper(root)
        if wrapper is None:
            break
        root = root[wrapper]
    else:
        raise WeightsError(path, f"holds checkpoints wrapped more than {MAX_DEPTH} deep")
    if isinstance(root, Mapping):
        tensors = {k: v for k, v in root.items() if isinstance(k, str) and isinstance(v, Tensor)}
        if tensors:
            return {k.removeprefix("module."): v.detach() for k, v in tensors.items()}
    elif _module_state(root) is not None:
        return _module_tensors(root, path)
    raise WeightsError(path, f"holds no module or state dict (found a {type(root).__name__})")


def _wrapper(root: object) -> str | None:
    """The key under which a checkpoint keeps its weights, or None if `root` is no wrapper."""
    if isinstance(root, Mapping):
        return next((k for k in ("state_dict", "model", "state_dict_ema") if k in root), None)
    return None


def _module_state(obj: object) -> dict | None:
    """An nn.Module's pickled `__dict__` (it has `_parameters`), or None."""
    state = obj._state if isinstance(obj, StandIn) else None
    if isinstance(state, tuple) and state:  # (state, slot state)
        state = state[0]
    return state if isinstance(state, dict) and "_parameters" in state else None


def _module_tensors(root: object, path: Path) -> dict[str, Tensor]:
    """Parameters, then persistent buffers, then submodules: `Module.state_dict()`'s order,
    walked depth first without recursion. Every entry looked at counts against MAX_ENTRIES,
    and a dotted name may be at most MAX_NAME characters long (MAX_DEPTH levels at most)."""
    tensors: dict[str, Tensor] = {}
    pending = [(root, "", 0)]
    seen = 0
    while pending:
        module, prefix, depth = pending.pop()
        state = _module_state(module)
        if state is None:
            continue
        if depth > MAX_DEPTH:
            raise WeightsError(path, f"its module tree is more than {MAX_DEPTH} levels deep")
        entries = [_items(state["_parameters"]), _items(state.get("_buffers"))]
        entries.append(_items(state.get("_modules")))
        seen += 1 + sum(map(len, entries))
        if seen > MAX_ENTRIES:
            raise WeightsError(
                path,
                f"its module tree names more than {MAX_ENTRIES:,} modules and tensors "
                "(modules shared over and over?); refused",
            )
        if any(len(prefix) + len(name) >= MAX_NAME for table in entries for name, _ in table):
            raise WeightsError(path, f"its module tree has names over {MAX_NAME} characters")
        parameters, buffers, children = entries
        skip = _as_set(state.get("_non_persistent_buffers_set"))
        for name, value in parameters + [(n, v) for n, v in buffers if n not in skip]:
            if isinstance(value, Tensor):
                tensors[prefix + name] = value.detach()
        pending.extend((child, f"{prefix}{name}.", depth + 1) for name, child in reversed(children))
    return tensors


def _items(table: object) -> list[tuple[str, object]]:
    """A pickled module dict's (name, value) pairs with string names; nothing for another type."""
    if not isinstance(table, Mapping):
        return []
    return [(k, v) for k, v in table.items() if isinstance(k, str)]


def _as_set(value: object) -> set:
    """A pickled set: real (protocol 4) or a stand-in for `builtins.set` holding its list."""
    if isinstance(value, StandIn):
        value = value._args[0] if value._args else ()
    if not isinstance(value, set | frozenset | list | tuple):
        return set()
    return {v for v in value if isinstance(v, str)}
