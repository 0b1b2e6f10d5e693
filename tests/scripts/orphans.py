"""A job whose workers start children and one stops itself: `orphans.py WORKERS CLUSTER OUT`."""

import sys

import twister2
from tests.reliability_jobs import children_then_wait

if __name__ == "__main__":
    workers, cluster, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    twister2.run(
        children_then_wait,
        workers=workers,
        cluster=cluster,
        args=[out],
        config={"master.failure_timeout": 300.0},
    )
