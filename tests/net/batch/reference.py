"""Single-process references for the batch operators, and the SPMD driver shared by the tests.

``drive(op_factory, plan, inputs, flow)`` runs one worker's side of an operation: it sends the
inputs of this worker's sources (``inputs[source]`` is that source's list of values), finishes
them, waits, and returns ``{target: result}`` for the worker's targets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from twister2.net.partitioners import stable_hash


def ref_reduce(inputs: list[list[Any]], fn: Any) -> Any:
    values = [v for vs in inputs for v in vs]
    if not values:
        return None
    acc = values[0]
    for v in values[1:]:
        acc = fn(acc, v)
    return acc


def ref_gather(inputs: list[list[Any]]) -> list[tuple[int, Any]]:
    return [(s, v) for s, vs in enumerate(inputs) for v in vs]


def ref_keyed_reduce(
    inputs: list[list[tuple[Any, Any]]], targets: int, fn: Any
) -> dict[int, dict[Any, Any]]:
    out: dict[int, dict[Any, Any]] = {t: {} for t in range(targets)}
    for vs in inputs:
        for k, v in vs:
            t = stable_hash(k) % targets
            out[t][k] = fn(out[t][k], v) if k in out[t] else v
    return out


def ref_keyed_gather(
    inputs: list[list[tuple[Any, Any]]], targets: int
) -> dict[int, dict[Any, list[Any]]]:
    out: dict[int, dict[Any, list[Any]]] = {t: defaultdict(list) for t in range(targets)}
    for vs in inputs:
        for k, v in vs:
            out[stable_hash(k) % targets][k].append(v)
    return out


def ref_join(
    left: list[tuple[Any, Any]], right: list[tuple[Any, Any]], how: str
) -> list[tuple[Any, Any, Any]]:
    rows = []
    rkeys = {k for k, _ in right}
    lkeys = {k for k, _ in left}
    for k, lv in left:
        matches = [rv for rk, rv in right if rk == k]
        if matches:
            rows += [(k, lv, rv) for rv in matches]
        elif how in ("left", "outer"):
            rows.append((k, lv, None))
    if how in ("right", "outer"):
        rows += [(k, None, rv) for k, rv in right if k not in lkeys]
    del rkeys
    return rows
