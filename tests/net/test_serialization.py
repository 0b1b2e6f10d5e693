"""Out-of-band serialisation: arrays and Arrow buffers are not copied into the pickle."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from twister2.net.serialization import OOB_THRESHOLD, SerializationError, dumps, loads


def test_numpy_buffers_travel_out_of_band_without_copies() -> None:
    arr = np.arange(1_000_000, dtype=np.float64)
    head, bufs = dumps({"a": arr, "small": np.arange(3)})
    assert len(head) < 2000  # the megabytes are not in the pickle
    assert len(bufs) == 1 and bufs[0].nbytes == arr.nbytes
    assert np.shares_memory(np.frombuffer(bufs[0], dtype=np.float64), arr)  # no copy made
    received = [bytearray(b) for b in bufs]
    out = loads(head, received)
    assert np.array_equal(out["a"], arr) and out["small"].tolist() == [0, 1, 2]
    assert np.shares_memory(out["a"], np.frombuffer(received[0], dtype=np.uint8))


def test_arrow_table_buffers_travel_out_of_band() -> None:
    table = pa.table({"k": pa.array(np.arange(100_000)), "s": pa.array(["x"] * 100_000)})
    head, bufs = dumps(table)
    assert sum(b.nbytes for b in bufs) >= 800_000
    assert len(head) < 10_000
    out = loads(head, [bytearray(b) for b in bufs])
    assert out.equals(table)


def test_small_buffers_stay_in_band() -> None:
    head, bufs = dumps(np.zeros(OOB_THRESHOLD // 8 - 1))
    assert bufs == []
    assert loads(head).shape == (OOB_THRESHOLD // 8 - 1,)


def test_unpicklable_value_names_its_type() -> None:
    with pytest.raises(SerializationError, match="generator"):
        dumps(i for i in range(3))
