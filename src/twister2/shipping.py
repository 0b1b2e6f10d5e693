"""Shipping an entry function by value: what workers cannot import by name travels pickled.

A function defined at the top level of a module or of a script file goes to the workers by
reference (they import it). Everything else -- a function defined in a notebook or IPython
session, in ``python -`` or ``python -c``, a lambda, a closure, a ``functools.partial``, a bound
method -- is pickled with cloudpickle (as Dask and Ray ship tasks) and sent to each worker by its
job master, over the job's authenticated connection, so a worker unpickles only what the job's
own submitter sent.

A function that captures something that cannot be pickled (a lock, an open socket or file) is
refused before the job starts, with the name of the captured object:

>>> import threading
>>> lock = threading.Lock()
>>> def main(env):
...     with lock:
...         return env.worker_id
>>> try:
...     dumps_entry(main, "main")
... except EntryNotShippableError as exc:
...     print(str(exc).split(". ")[0])
the entry function 'main' cannot be shipped to the workers: its global 'lock' (a _thread.lock) \
cannot be pickled (cannot pickle '_thread.lock' object)

A shippable one round-trips:

>>> offset = 10
>>> loads_entry(dumps_entry(lambda env: env + offset, "<lambda>"))(5)
15
"""

from __future__ import annotations

import functools
import pickle
import types
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle

__all__ = ["EntryNotShippableError", "dumps_entry", "loads_entry"]

_MAX_DEPTH = 4


class EntryNotShippableError(TypeError):
    """The entry function captures an object that cannot be pickled, so no worker can run it."""


def dumps_entry(func: Callable[..., Any], name: str) -> bytes:
    """Pickle ``func`` by value, or raise :class:`EntryNotShippableError` naming the culprit."""
    try:
        return cloudpickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as exc:
        found = _culprit(func, "", 0)
        if found is None:
            what, reason = f"it (a {_type_name(func)})", str(exc)
        else:
            path, obj, error = found
            what, reason = f"its {path} (a {_type_name(obj)})", str(error)
        msg = (
            f"the entry function {name!r} cannot be shipped to the workers: {what} cannot be "
            f"pickled ({reason}). Create it inside the function, so that each worker makes its "
            "own, or pass what it needs (a path, an address) instead"
        )
        raise EntryNotShippableError(msg) from exc


def loads_entry(blob: bytes) -> Callable[..., Any]:
    """The function :func:`dumps_entry` pickled (call only on bytes from the job's submitter)."""
    func = pickle.loads(blob)
    if not callable(func):
        msg = f"the shipped entry is a {_type_name(func)}, not a function"
        raise TypeError(msg)
    return func  # type: ignore[no-any-return]


def _type_name(obj: Any) -> str:
    kind = type(obj)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _culprit(obj: Any, path: str, depth: int) -> tuple[str, Any, Exception] | None:
    """The innermost named part of ``obj`` that cannot be pickled: (path, object, error)."""
    if depth > _MAX_DEPTH:
        return None
    for label, part in _parts(obj):
        if not path:
            child = label
        elif label[0] in "[.":
            child = f"{path}{label}"
        else:
            child = f"{path}, whose {label}"
        try:
            cloudpickle.dumps(part)
        except Exception as exc:
            deeper = _culprit(part, child, depth + 1)
            return deeper if deeper is not None else (child, part, exc)
    return None


def _parts(obj: Any) -> Iterator[tuple[str, Any]]:
    """The named objects ``obj`` carries into its pickle, with a label for each."""
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        for var, cell in zip(code.co_freevars, obj.__closure__ or (), strict=False):
            try:
                yield f"closure variable {var!r}", cell.cell_contents
            except ValueError:  # an empty cell
                continue
        for global_name in sorted(_global_names(code)):
            if global_name in obj.__globals__:
                yield f"global {global_name!r}", obj.__globals__[global_name]
        for i, default in enumerate(obj.__defaults__ or ()):
            yield f"default argument {i}", default
        for key, default in (obj.__kwdefaults__ or {}).items():
            yield f"default of {key!r}", default
    elif isinstance(obj, functools.partial):
        yield "partial's function", obj.func
        for i, arg in enumerate(obj.args):
            yield f"partial argument {i}", arg
        for key, arg in obj.keywords.items():
            yield f"partial argument {key!r}", arg
    elif isinstance(obj, types.MethodType):
        yield "bound object", obj.__self__
        yield "method", obj.__func__
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield f"[{key!r}]", value
    elif isinstance(obj, list | tuple | set | frozenset):
        for i, value in enumerate(obj):
            yield f"[{i}]", value
    elif hasattr(obj, "__dict__") and not isinstance(obj, type | types.ModuleType):
        for key, value in vars(obj).items():
            yield f".{key}", value


def _global_names(code: types.CodeType) -> set[str]:
    """The global names ``code`` and the functions nested in it refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
