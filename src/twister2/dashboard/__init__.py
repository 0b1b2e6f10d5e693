"""The web dashboard: a history server over the jobs' event logs, with a JSON API.

``twister2 dashboard`` starts it; docs/dashboard.md documents its pages, its API and the events
it reads (including the ``operation``, ``graph``, ``stage`` and ``log`` events that operators, the
task system and workers write).
"""

from twister2.dashboard.auth import JobNotRunning, job_kill_token, kill_token
from twister2.dashboard.graph import Dataflow, find_stragglers
from twister2.dashboard.history import History, JobView
from twister2.dashboard.progress import SubmitProgress
from twister2.dashboard.server import DASHBOARD_FILE, Dashboard, find_dashboard

__all__ = [
    "DASHBOARD_FILE",
    "Dashboard",
    "Dataflow",
    "History",
    "JobNotRunning",
    "JobView",
    "SubmitProgress",
    "find_dashboard",
    "find_stragglers",
    "job_kill_token",
    "kill_token",
]
