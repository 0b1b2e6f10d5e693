#!/usr/bin/env python3
"""Run a command as a daemon under a child subreaper that reaps every orphan at once.

Some sandboxes run an init (PID 1) that reaps orphans late. slurmstepd waits for a job's process
group to empty, and srun leaves a short-lived helper whose zombie would then hold every job that
ran ``srun`` for about 3 s. Starting slurmd under this (``subreaper.py /usr/sbin/slurmd -D ...``)
makes those zombies ours, reaped at once. The command's own PID file (slurmd's) stops it; this
process exits with it.

    usage: subreaper.py COMMAND [ARG...]     (returns at once; the daemon lives on)
"""

import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    if os.fork():
        return  # the caller's process: done, the daemon goes on
    os.setsid()
    if os.fork():
        os._exit(0)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    child = os.fork()
    if child == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    while True:
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            break
        if pid == child:
            # reap what is left for a moment, then go
            break
    os._exit(0)


if __name__ == "__main__":
    main()
