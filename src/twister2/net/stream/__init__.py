"""Twister2:Net streaming operators: values flow as they are sent, with bounded memory."""

from twister2.net.stream.base import END, StreamOperation
from twister2.net.stream.ops import (
    StreamAllGather,
    StreamAllReduce,
    StreamBroadcast,
    StreamDirect,
    StreamGather,
    StreamKeyedGather,
    StreamKeyedPartition,
    StreamKeyedReduce,
    StreamPartition,
    StreamReduce,
)

__all__ = [
    "END",
    "StreamAllGather",
    "StreamAllReduce",
    "StreamBroadcast",
    "StreamDirect",
    "StreamGather",
    "StreamKeyedGather",
    "StreamKeyedPartition",
    "StreamKeyedReduce",
    "StreamOperation",
    "StreamPartition",
    "StreamReduce",
]
