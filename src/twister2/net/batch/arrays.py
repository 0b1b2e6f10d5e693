"""The array tier of the batch operators: partition, keyed reduce, keyed gather and join of Arrow
tables, with vectorised kernels and no Python loop per record.

Sources send whole ``pyarrow.Table`` or ``RecordBatch`` objects (or dicts of NumPy columns,
converted with ``pyarrow.table``). Each is split by the hash of its key column into one part per
target (:func:`~twister2.net.batch.array_kernels.split_by_target`: a hash, an ``argsort`` and one
``take`` per target); parts for the same worker are grouped into messages of about
:data:`BATCH_BYTES` and travel as pickle-5 out-of-band buffers (no copy into the pickle). Keys
hash as :func:`~twister2.net.partitioners.stable_hash` hashes the equal Python value, so the two
tiers agree on where a key goes.

All tables sent to one operation must have one schema (per side of a join); the schema also
travels with every worker's end message, so a target that receives no rows still returns an
empty table of the right schema. Only when no source of the whole job sent anything is the
schema unknown: then results are empty tables with no columns.

Targets hold what they receive in a :class:`~twister2.net.batch.array_spill.TableStore`: past
``net.spill.memory_bytes`` (shared by a worker's targets) it spills as Arrow IPC files under the
worker's scratch folder, removed by ``close()``.

The operators live in :mod:`~twister2.net.batch.array_ops` (partition, keyed reduce, keyed
gather) and :mod:`~twister2.net.batch.array_join`; their kernels in
:mod:`~twister2.net.batch.array_kernels` and their spill stores in
:mod:`~twister2.net.batch.array_spill`.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from twister2.net.inproc import InprocChannel
>>> from twister2.net import Dataflow, Plan
>>> (ch,) = InprocChannel.group(1)
>>> with Dataflow(ch) as flow:
...     op = ArrayKeyedReduce(flow, Plan.spread(2, 1, 1), "k", {"v": ["sum", "mean"]})
...     _ = op.send(0, pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3]}))
...     _ = op.send(1, {"k": np.array(["b"]), "v": np.array([10])})
...     op.finish(0); op.finish(1)
...     op.wait().result(0).to_pylist()
[{'k': 'a', 'v_sum': 4, 'v_mean': 2.0}, {'k': 'b', 'v_sum': 12, 'v_mean': 6.0}]
"""

from __future__ import annotations

from twister2.net.batch.array_join import ArrayJoin
from twister2.net.batch.array_ops import (
    BATCH_BYTES,
    ArrayKeyedGather,
    ArrayKeyedReduce,
    ArrayPartition,
)

__all__ = ["BATCH_BYTES", "ArrayJoin", "ArrayKeyedGather", "ArrayKeyedReduce", "ArrayPartition"]
