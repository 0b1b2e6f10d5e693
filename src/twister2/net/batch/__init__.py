"""Twister2:Net batch operators: reduce, allreduce, gather, allgather, broadcast, direct,
partition, keyed reduce, keyed gather, keyed partition and join; and their array tier (Arrow
tables), which needs pyarrow and is imported on first use."""

from typing import TYPE_CHECKING, Any

from twister2.net.batch.join import Join
from twister2.net.batch.keyed import Direct, KeyedGather, KeyedPartition, KeyedReduce, Partition
from twister2.net.batch.tree import AllGather, AllReduce, Broadcast, Gather, Reduce

if TYPE_CHECKING:
    from twister2.net.batch.arrays import (
        ArrayJoin,
        ArrayKeyedGather,
        ArrayKeyedReduce,
        ArrayPartition,
    )

__all__ = [
    "AllGather",
    "AllReduce",
    "ArrayJoin",
    "ArrayKeyedGather",
    "ArrayKeyedReduce",
    "ArrayPartition",
    "Broadcast",
    "Direct",
    "Gather",
    "Join",
    "KeyedGather",
    "KeyedPartition",
    "KeyedReduce",
    "Partition",
    "Reduce",
]

_ARRAY_TIER = ("ArrayJoin", "ArrayKeyedGather", "ArrayKeyedReduce", "ArrayPartition")


def __getattr__(name: str) -> Any:
    if name in _ARRAY_TIER:  # the array tier imports pyarrow (the optional "arrow" extra)
        from twister2.net.batch import arrays

        return getattr(arrays, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
