"""Reduce functions: SUM, MIN, MAX and PRODUCT, element-wise on NumPy arrays, and user functions.

Example
-------
>>> import numpy as np
>>> SUM(1, 2), MAX(np.array([1, 5]), np.array([3, 2])).tolist()
(3, [3, 5])
>>> resolve("min") is MIN
True
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["MAX", "MIN", "PRODUCT", "SUM", "ReduceFunction", "resolve"]

ReduceFunction = Callable[[Any, Any], Any]


def _is_array(value: Any) -> bool:
    np = sys.modules.get("numpy")  # no NumPy loaded: no NumPy arrays either
    return np is not None and isinstance(value, np.ndarray)


class _Builtin:
    def __init__(self, name: str, ufunc: str, scalar: Callable[[Any, Any], Any]) -> None:
        self.name = name
        self.ufunc_name = ufunc
        self.scalar = scalar

    @property
    def ufunc(self) -> Any:
        import numpy as np

        return getattr(np, self.ufunc_name)

    def __call__(self, a: Any, b: Any) -> Any:
        if _is_array(a) or _is_array(b):
            import numpy as np

            a_arr, b_arr = np.asarray(a), np.asarray(b)
            if a_arr.shape != b_arr.shape:
                msg = f"{self.name} of arrays with different shapes {a_arr.shape} and {b_arr.shape}"
                raise ValueError(msg)
            return self.ufunc(a_arr, b_arr)
        return self.scalar(a, b)

    def combine_into(self, acc: Any, value: Any) -> Any:
        """Like ``__call__`` but may update ``acc`` in place (a NumPy array it owns)."""
        if _is_array(acc) and _is_array(value):
            import numpy as np

            if acc.shape != value.shape:
                msg = f"{self.name} of arrays with different shapes {acc.shape} and {value.shape}"
                raise ValueError(msg)
            if acc.flags.writeable and np.can_cast(value.dtype, acc.dtype, "same_kind"):
                self.ufunc(acc, value, out=acc)
                return acc
        return self(acc, value)

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self.name


SUM = _Builtin("SUM", "add", lambda a, b: a + b)
MIN = _Builtin("MIN", "minimum", min)
MAX = _Builtin("MAX", "maximum", max)
PRODUCT = _Builtin("PRODUCT", "multiply", lambda a, b: a * b)

_BY_NAME = {"sum": SUM, "min": MIN, "max": MAX, "product": PRODUCT, "prod": PRODUCT}


def resolve(op: str | ReduceFunction) -> ReduceFunction:
    """A reduce function from a name (``"sum"``...) or a callable of two values."""
    if isinstance(op, str):
        try:
            return _BY_NAME[op.lower()]
        except KeyError:
            msg = f"unknown reduce function {op!r} (known: sum, min, max, product, or a callable)"
            raise ValueError(msg) from None
    if not callable(op):
        msg = f"a reduce function must be callable, got {type(op).__qualname__}"
        raise TypeError(msg)
    return op


def combine(fn: ReduceFunction, acc: Any, value: Any) -> Any:
    """Fold ``value`` into ``acc`` with ``fn``, in place where that is safe."""
    if isinstance(fn, _Builtin):
        return fn.combine_into(acc, value)
    return fn(acc, value)
