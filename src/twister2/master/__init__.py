"""The job master: registration, discovery, barriers, heartbeats, job states and the event log."""

from twister2.master.client import (
    BarrierError,
    MasterClient,
    MasterError,
    MasterUnreachable,
    parse_address,
)
from twister2.master.events import EventLog, JobSummary, list_jobs, read_events, summarize
from twister2.master.record import Failure, JobRecord, describe_exit
from twister2.master.server import JobMaster

__all__ = [
    "BarrierError",
    "EventLog",
    "Failure",
    "JobMaster",
    "JobRecord",
    "JobSummary",
    "MasterClient",
    "MasterError",
    "MasterUnreachable",
    "describe_exit",
    "list_jobs",
    "parse_address",
    "read_events",
    "summarize",
]
