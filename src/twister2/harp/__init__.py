"""Harp: BSP collectives over tables of partitions (Twister2's Harp, in Python).

A :class:`Table` holds :class:`Partition` s (an id and a NumPy array or any object) and a
:class:`Combiner` for equal ids. :class:`Harp` gives a worker the collectives (``broadcast``,
``reduce``, ``allreduce``, ``allgather``, ``regroup``, ``aggregate``, ``push``, ``pull``,
``rotate``), built on the Twister2:Net operators; :class:`HarpWorker` is a job's entry point.
"""

from twister2.harp.collectives import Harp, HarpError, Partitioner, modulo
from twister2.harp.table import (
    MAX,
    MIN,
    REPLACE,
    SUM,
    CombineError,
    CombineFunction,
    Combiner,
    Partition,
    Table,
    combiner,
)
from twister2.harp.worker import HarpWorker

__all__ = [
    "MAX",
    "MIN",
    "REPLACE",
    "SUM",
    "CombineError",
    "CombineFunction",
    "Combiner",
    "Harp",
    "HarpError",
    "HarpWorker",
    "Partition",
    "Partitioner",
    "Table",
    "combiner",
    "modulo",
]
