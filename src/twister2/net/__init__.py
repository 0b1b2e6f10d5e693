"""Twister2:Net: channels, the dataflow engine and its operators."""

from twister2.net.channel import (
    ANY_SOURCE,
    Channel,
    ChannelError,
    ChannelTimeout,
    available_channels,
    register_channel,
)
from twister2.net.dataflow import Dataflow, Operation, OperationError
from twister2.net.plan import Plan
from twister2.net.reductions import MAX, MIN, PRODUCT, SUM

__all__ = [
    "ANY_SOURCE",
    "MAX",
    "MIN",
    "PRODUCT",
    "SUM",
    "Channel",
    "ChannelError",
    "ChannelTimeout",
    "Dataflow",
    "Operation",
    "OperationError",
    "Plan",
    "available_channels",
    "register_channel",
]
