"""The logical plan of an operation: which worker hosts each logical source and target.

Operators move data between *logical* sources and targets (task instances), not workers: 3
sources and 5 targets on 2 workers is a plan like any other.

Example
-------
>>> plan = Plan.spread(sources=3, targets=5, workers=2)
>>> plan.sources, plan.targets
((0, 1, 0), (0, 1, 0, 1, 0))
>>> plan.local_sources(1), plan.local_targets(0)
([1], [0, 2, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Plan"]


@dataclass(frozen=True)
class Plan:
    """``sources[i]`` is the worker of logical source ``i``; ``targets[j]`` that of target ``j``."""

    sources: tuple[int, ...]
    targets: tuple[int, ...]
    workers: int

    def __post_init__(self) -> None:
        if self.workers < 1:
            msg = f"a plan needs at least one worker, got {self.workers}"
            raise ValueError(msg)
        for kind, ids in (("source", self.sources), ("target", self.targets)):
            bad = [w for w in ids if not 0 <= w < self.workers]
            if bad:
                msg = f"{kind} workers {bad} are out of range 0..{self.workers - 1}"
                raise ValueError(msg)
        if not self.targets:
            msg = "a plan needs at least one target"
            raise ValueError(msg)

    @classmethod
    def spread(cls, sources: int, targets: int, workers: int) -> Plan:
        """Sources and targets dealt round robin over the workers."""
        return cls(
            tuple(i % workers for i in range(sources)),
            tuple(j % workers for j in range(targets)),
            workers,
        )

    @classmethod
    def per_worker(cls, workers: int) -> Plan:
        """One source and one target on every worker (the SPMD case)."""
        return cls.spread(workers, workers, workers)

    def local_sources(self, worker: int) -> list[int]:
        return [i for i, w in enumerate(self.sources) if w == worker]

    def local_targets(self, worker: int) -> list[int]:
        return [j for j, w in enumerate(self.targets) if w == worker]

    @property
    def target_workers(self) -> list[int]:
        return sorted(set(self.targets))
