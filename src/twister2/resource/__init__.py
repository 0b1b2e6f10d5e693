"""Launchers that turn a job into running workers, chosen by cluster name."""

from twister2.resource import kubernetes as _kubernetes
from twister2.resource import local as _local
from twister2.resource import mesos as _mesos
from twister2.resource import mpi as _mpi
from twister2.resource import nomad as _nomad
from twister2.resource import slurm as _slurm
from twister2.resource.base import (
    Launcher,
    LaunchHandle,
    PlacementError,
    available_launchers,
    get_launcher,
    register_launcher,
)

__all__ = [
    "LaunchHandle",
    "Launcher",
    "PlacementError",
    "available_launchers",
    "get_launcher",
    "register_launcher",
]
del _kubernetes, _local, _mesos, _mpi, _nomad, _slurm
