"""Twister2:Net batch operators: reduce, allreduce, gather, allgather, broadcast, direct,
partition, keyed reduce, keyed gather, keyed partition and join."""

from twister2.net.batch.join import Join
from twister2.net.batch.keyed import Direct, KeyedGather, KeyedPartition, KeyedReduce, Partition
from twister2.net.batch.tree import AllGather, AllReduce, Broadcast, Gather, Reduce

__all__ = [
    "AllGather",
    "AllReduce",
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
