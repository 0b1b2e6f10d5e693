"""The dataflow of a job, folded from its ``graph`` and ``operation`` events.

Operators report each operation they ran (``operation`` events: operator, logical sources and
targets, bytes and values moved, and per task instance stats); the task system will declare its
graph (a ``graph`` event: nodes with their parallelism, edges labelled by operator). This module
folds both into what the dashboard draws: nodes, edges with their traffic, per-task instance
stats with stragglers flagged, and the largest partitions. docs/dashboard.md defines the events.

Example
-------
>>> flow = Dataflow()
>>> flow.add_operation({"op": "reduce", "source_task": "map", "target_task": "sum",
...     "sources": [0, 1, 1], "targets": [0], "bytes": 120, "values": 3, "instances": [
...     {"task": "map", "index": i, "worker": w, "values_out": 1, "busy_s": b}
...     for i, w, b in [(0, 0, 1.0), (1, 1, 1.1), (2, 1, 3.0)]]})
>>> view = flow.to_dict(straggler_factor=1.5)
>>> [(n["name"], n["parallelism"]) for n in view["nodes"]]
[('map', 3), ('sum', 1)]
>>> [(e["from"], e["to"], e["op"], e["bytes"]) for e in view["edges"]]
[('map', 'sum', 'reduce', 120)]
>>> [(s["task"], s["index"], s["worker"]) for s in view["stragglers"]]
[('map', 2, 1)]
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Dataflow", "edge_name", "find_stragglers"]

LARGEST_PARTITIONS = 5

_GENERATED = re.compile(r"^(?P<base>.+?)(?:#\d+)?$")
"""A name as the dataflow makes it: ``base`` for the first operation of that name, then
``base#1``, ``base#2``, ... (a name reused every iteration); unnamed operations are ``0``, ``1``."""


def edge_name(name: str | None, op: str) -> str:
    """The edge an operation's report adds to: its name without the generation suffix that
    repeated operations of one name get, or its operator when it was not named (the
    dataflow's automatic names ``0``, ``1``, ... and their generations).

    >>> edge_name("shuffle#3", "partition"), edge_name("shuffle", "partition")
    ('shuffle', 'shuffle')
    >>> edge_name("7", "keyed_reduce"), edge_name("0#2", "reduce"), edge_name(None, "gather")
    ('keyed_reduce', 'reduce', 'gather')
    """
    if not name:
        return op
    match = _GENERATED.match(name)
    base = match.group("base") if match else name
    return op if base.isdigit() else base


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        msg = f"{what} must be a non-empty string, got {value!r}"
        raise ValueError(msg)
    return value


def _count(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{what} must be a count (an int >= 0), got {value!r}"
        raise ValueError(msg)
    return value


def _seconds(value: Any, what: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        msg = f"{what} must be seconds (a number >= 0), got {value!r}"
        raise ValueError(msg)
    return float(value)


def _ids(value: Any, what: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        msg = f"{what} must be a list of ints, got {value!r}"
        raise ValueError(msg)
    return value


def _parallelism(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"a node's parallelism must be an int >= 1, got {value!r}"
        raise ValueError(msg)
    return value


@dataclass
class _Edge:
    name: str
    op: str
    source: str
    target: str
    sources: int = 0
    targets: int = 0
    bytes: int = 0
    values: int = 0
    runs: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    workers: set[int] = field(default_factory=set)

    def add(self, other: _Edge) -> None:
        """Count ``other``'s traffic and time in this edge."""
        self.sources = max(self.sources, other.sources)
        self.targets = max(self.targets, other.targets)
        self.bytes += other.bytes
        self.values += other.values
        self.runs += other.runs
        self.seconds += other.seconds
        self.max_seconds = max(self.max_seconds, other.max_seconds)
        self.workers |= other.workers

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "from": self.source,
            "to": self.target,
            "sources": self.sources,
            "targets": self.targets,
            "bytes": self.bytes,
            "values": self.values,
            "runs": self.runs,
            "seconds": round(self.seconds, 6),
            "max_seconds": round(self.max_seconds, 6),
            "workers": sorted(self.workers),
        }


@dataclass
class _Instance:
    task: str
    index: int
    worker: int | None = None
    values_in: int = 0
    values_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    busy_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "index": self.index,
            "worker": self.worker,
            "values_in": self.values_in,
            "values_out": self.values_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "busy_s": round(self.busy_s, 6),
        }


def find_stragglers(busy: Mapping[int, float], factor: float) -> list[int]:
    """The instances busy longer than ``factor`` times the median of their task.

    A task with one instance, or whose median is zero, has no stragglers.

    >>> find_stragglers({0: 1.0, 1: 1.1, 2: 0.9, 3: 2.0}, 1.5)
    [3]
    >>> find_stragglers({0: 5.0}, 1.5)
    []
    """
    if len(busy) < 2:
        return []
    median = statistics.median(busy.values())
    if median <= 0:
        return []
    return sorted(i for i, b in busy.items() if b > factor * median)


class Dataflow:
    """Folds ``graph`` and ``operation`` events; :meth:`to_dict` gives the dashboard's view."""

    def __init__(self) -> None:
        self._declared_nodes: dict[str, int] = {}
        self._declared_edges: list[tuple[str, str, str, str]] = []
        self._edges: dict[tuple[str, str, str], _Edge] = {}
        self._instances: dict[tuple[str, int], _Instance] = {}

    def add_graph(self, event: Mapping[str, Any]) -> None:
        """A declared task graph: ``nodes`` [{name, parallelism}], ``edges`` [{from, to, op}].

        The latest declaration wins. Raises ValueError for a malformed event.
        """
        nodes = event.get("nodes")
        edges = event.get("edges", [])
        if not isinstance(nodes, list) or not isinstance(edges, list):
            msg = "a graph event needs lists 'nodes' and 'edges'"
            raise ValueError(msg)
        declared: dict[str, int] = {}
        for node in nodes:
            if not isinstance(node, dict):
                msg = f"a graph node must be an object, got {node!r}"
                raise ValueError(msg)
            declared[_str(node.get("name"), "a node's name")] = _parallelism(
                node.get("parallelism", 1)
            )
        links = []
        for edge in edges:
            if not isinstance(edge, dict):
                msg = f"a graph edge must be an object, got {edge!r}"
                raise ValueError(msg)
            source = _str(edge.get("from"), "an edge's 'from'")
            target = _str(edge.get("to"), "an edge's 'to'")
            op = _str(edge.get("op"), "an edge's 'op'")
            name = edge.get("name") or f"{source}->{target}"
            links.append((_str(name, "an edge's name"), op, source, target))
            for end in (source, target):
                declared.setdefault(end, 1)
        self._declared_nodes, self._declared_edges = declared, links

    def add_operation(self, event: Mapping[str, Any], worker: int | None = None) -> None:
        """One worker's report of one operation it took part in.

        Raises ValueError for a malformed event (nothing of it is counted then).
        """
        op = _str(event.get("op"), "'op'")
        raw_name = event.get("name")
        if raw_name is not None:
            _str(raw_name, "'name'")
        name = edge_name(raw_name, op)
        source = _str(event.get("source_task") or f"{name} sources", "'source_task'")
        target = _str(event.get("target_task") or f"{name} targets", "'target_task'")
        sources = _ids(event.get("sources"), "'sources'")
        targets = _ids(event.get("targets"), "'targets'")
        moved = _count(event.get("bytes"), "'bytes'")
        values = _count(event.get("values"), "'values'")
        took = _seconds(event.get("seconds"), "'seconds'")
        raw = event.get("instances") or []
        if not isinstance(raw, list):
            msg = f"'instances' must be a list, got {raw!r}"
            raise ValueError(msg)
        stats = [self._instance_stats(item) for item in raw]
        edge = self._edges.get((name, source, target))
        if edge is None:
            edge = self._edges[(name, source, target)] = _Edge(name, op, source, target)
        report = _Edge(name, op, source, target, len(sources), len(targets), moved, values)
        report.runs, report.seconds, report.max_seconds = 1, took, took
        if worker is not None:
            report.workers.add(worker)
        edge.add(report)
        for task, index, wid, counts, busy in stats:
            inst = self._instances.get((task, index))
            if inst is None:
                inst = self._instances[(task, index)] = _Instance(task, index)
            inst.worker = wid if wid is not None else worker
            inst.values_in += counts[0]
            inst.values_out += counts[1]
            inst.bytes_in += counts[2]
            inst.bytes_out += counts[3]
            inst.busy_s += busy

    @staticmethod
    def _instance_stats(
        item: Any,
    ) -> tuple[str, int, int | None, tuple[int, int, int, int], float]:
        if not isinstance(item, dict):
            msg = f"an instance must be an object, got {item!r}"
            raise ValueError(msg)
        task = _str(item.get("task"), "an instance's 'task'")
        index = _count(item.get("index"), "an instance's 'index'")
        wid = item.get("worker")
        if wid is not None:
            wid = _count(wid, "an instance's 'worker'")
        counts = tuple(
            _count(item.get(k), f"an instance's {k!r}")
            for k in ("values_in", "values_out", "bytes_in", "bytes_out")
        )
        busy = _seconds(item.get("busy_s"), "an instance's 'busy_s'")
        return task, index, wid, (counts[0], counts[1], counts[2], counts[3]), busy

    # -- the view ----------------------------------------------------------------------------
    def to_dict(self, straggler_factor: float) -> dict[str, Any]:
        """Nodes, edges, per-task stats, stragglers and the largest partitions."""
        edges = self._merged_edges()
        nodes = self._nodes(edges)
        tasks, stragglers = self._tasks(straggler_factor)
        return {
            "source": "graph" if self._declared_nodes else "operations" if edges else "none",
            "nodes": nodes,
            "edges": [e.to_dict() for e in edges],
            "tasks": tasks,
            "stragglers": stragglers,
            "largest_partitions": self._largest(),
            "straggler_factor": straggler_factor,
        }

    def _merged_edges(self) -> list[_Edge]:
        """Declared edges first (with the traffic of the operations that match them), then the
        operations that match no declared edge."""
        measured = dict(self._edges)
        merged = []
        for name, op, source, target in self._declared_edges:
            edge = _Edge(name, op, source, target)
            for key, seen in list(measured.items()):
                if (seen.source, seen.target) == (source, target) or seen.name == name:
                    edge.add(seen)
                    del measured[key]
            merged.append(edge)
        return merged + list(measured.values())

    def _nodes(self, edges: list[_Edge]) -> list[dict[str, Any]]:
        width: dict[str, int] = dict(self._declared_nodes)
        for edge in edges:
            for name, count in ((edge.source, edge.sources), (edge.target, edge.targets)):
                if name not in self._declared_nodes:
                    width[name] = max(width.get(name, 1), count)
        for task, _ in self._instances:
            if task not in self._declared_nodes:
                seen = len({i for t, i in self._instances if t == task})
                width[task] = max(width.get(task, 1), seen)
        return [{"name": name, "parallelism": p} for name, p in width.items()]

    def _tasks(self, factor: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        by_task: dict[str, list[_Instance]] = {}
        for inst in self._instances.values():
            by_task.setdefault(inst.task, []).append(inst)
        tasks, stragglers = [], []
        for task, insts in by_task.items():
            insts.sort(key=lambda i: i.index)
            slow = set(find_stragglers({i.index: i.busy_s for i in insts}, factor))
            median = statistics.median(i.busy_s for i in insts)
            mean_in = sum(i.bytes_in for i in insts) / len(insts)
            rows = []
            for inst in insts:
                row = inst.to_dict() | {"straggler": inst.index in slow}
                rows.append(row)
                if inst.index in slow:
                    ratio = inst.busy_s / median if median else None
                    stragglers.append(row | {"median_busy_s": median, "ratio": ratio})
            tasks.append(
                {
                    "task": task,
                    "parallelism": len(insts),
                    "median_busy_s": round(median, 6),
                    "max_busy_s": round(max(i.busy_s for i in insts), 6),
                    "bytes_in": sum(i.bytes_in for i in insts),
                    "values_in": sum(i.values_in for i in insts),
                    "skew": round(max(i.bytes_in for i in insts) / mean_in, 3) if mean_in else None,
                    "instances": rows,
                }
            )
        return tasks, stragglers

    def _largest(self) -> list[dict[str, Any]]:
        totals: dict[str, int] = {}
        for inst in self._instances.values():
            totals[inst.task] = totals.get(inst.task, 0) + inst.bytes_in
        ranked = sorted(
            (i for i in self._instances.values() if i.bytes_in or i.values_in),
            key=lambda i: (i.bytes_in, i.values_in),
            reverse=True,
        )
        return [
            i.to_dict()
            | {"share": round(i.bytes_in / totals[i.task], 4) if totals[i.task] else None}
            for i in ranked[:LARGEST_PARTITIONS]
        ]
