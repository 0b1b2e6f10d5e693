"""Sort: a sorted keyed gather of 100-byte records (10-byte keys) with a memory limit per worker.

Every worker's source generates its share of the records in chunks (``--chunk`` records at a
time: the share is never in memory at once) as an Arrow table with a ``fixed_size_binary(10)``
key column ``k`` and a ``fixed_size_binary(90)`` value column ``v``, random bytes from a seeded
generator, and sends each chunk to an :class:`twister2.net.batch.ArrayKeyedGather` with
``sort=True`` (the array tier: vectorised routing, spilling past ``net.spill.memory_bytes`` as
Arrow IPC files, external sort by key-range buckets). Records go to the target that owns their
key range (a range partitioner on the first key byte, as TeraSort does), so target 0's output
followed by target 1's is in global key order. Each target then reads its sorted record batches.

Checked in every run: the output is in key order (within and across batches, and across
targets), complete (as many records as were generated) and unchanged (an order-independent
checksum: the sum mod 2**64 of a 64-bit mix of each record's key and the first and last 8 bytes
of its value, computed at the sources and over the output).

Measured in each worker: wall time from a barrier to the end of its sorted read, split into
the exchange (generate and send everything, ``wait()``: received data spills as it arrives) and
the sorted read (``result()``: the external sort); the time spent generating records; peak RSS,
the max of ``psutil`` samples every 5 ms from a thread (and, as a check, the kernel's high-water
mark ``ru_maxrss``), overall and per phase, with the peaks of its parts ``RssAnon`` (anonymous
memory) and ``RssFile`` (pages of mapped files: memory-mapped spill files count here) and the
peak of Arrow's memory pool. The fixed overhead is the worker's RSS just before the sort, with
NumPy, pyarrow and the array tier imported and the dataflow started. records/s = all records /
the slowest worker's wall time.

    python benchmarks/sort.py            # 2 GB total, 2 workers, 256 MiB limit per worker
    python benchmarks/sort.py --quick    # 20 MB total, 4 MiB limit
    python benchmarks/sort.py --gb 1 -c network.recv_buffer_bytes=8388608   # other settings
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from table import add_report_options, emit, markdown_table, yes_no

import twister2
from twister2.config import parse_assignment

RECORD = 100
KEY = 10
VALUE = RECORD - KEY
MIB = 1 << 20
SAMPLE_S = 0.005
CHECK_FAILED = "**The output check FAILED** (see the sorted, complete and checksum columns)."


class RssSampler(threading.Thread):
    """The process's RSS every ``interval`` seconds; ``peak`` is the largest seen."""

    def __init__(self, interval: float = SAMPLE_S) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop_event = threading.Event()
        self.peak = self._process.memory_info().rss
        self.phase_peak = self.peak
        self.samples = 0
        self.anon_peak = self.file_peak = 0

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        rss = self._process.memory_info().rss
        self.peak = max(self.peak, rss)
        self.phase_peak = max(self.phase_peak, rss)
        self.samples += 1
        anon, file = _rss_parts()
        self.anon_peak = max(self.anon_peak, anon)
        self.file_peak = max(self.file_peak, file)

    def phase(self) -> int:
        """The peak since the last call (or the start), and start a new phase."""
        self.sample()
        peak, self.phase_peak = self.phase_peak, 0
        return peak

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.sample()
        return self.peak


def _rss_parts() -> tuple[int, int]:
    """``(RssAnon, RssFile)`` of this process in bytes (Linux; zeros elsewhere): anonymous
    memory, and pages of mapped files (memory-mapped spill files count here)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith("Rss"))
    except OSError:
        return 0, 0
    kib = [int(fields.get(name, "0 kB").split()[0]) for name in ("RssAnon", "RssFile")]
    return kib[0] * 1024, kib[1] * 1024


def _bytes_of(arr: Any) -> np.ndarray[Any, Any]:
    """A ``fixed_size_binary`` array's values as an ``(n, width)`` ``uint8`` matrix (no copy)."""
    width = arr.type.byte_width
    data = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    return data[arr.offset * width : (arr.offset + len(arr)) * width].reshape(len(arr), width)


def _key_words(keys: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each 10-byte key as (big-endian first 8 bytes, big-endian last 2): compare as tuples."""
    high = np.ascontiguousarray(keys[:, :8]).view(">u8").ravel().astype(np.uint64)
    low = np.ascontiguousarray(keys[:, 8:]).view(">u2").ravel().astype(np.uint64)
    return high, low


def _checksum(keys: np.ndarray[Any, Any], values: np.ndarray[Any, Any]) -> int:
    """The sum mod 2**64 of a mix of each record's key and value ends (order-independent)."""
    from twister2.net.batch.array_kernels import mix64

    high, low = _key_words(keys)
    first = np.ascontiguousarray(values[:, :8]).view("<u8").ravel()
    last = np.ascontiguousarray(values[:, -8:]).view("<u8").ravel()
    mixed = mix64(high ^ mix64(low ^ mix64(first ^ mix64(last.copy()))))
    return int(mixed.sum(dtype=np.uint64))


def range_partitioner(column: Any, targets: int) -> np.ndarray[Any, Any]:
    """Target of each key by its first byte: contiguous key ranges, target 0 the lowest."""
    firsts = [_bytes_of(chunk)[:, 0] for chunk in column.chunks]
    first = np.concatenate(firsts) if firsts else np.empty(0, dtype=np.uint8)
    return first.astype(np.int64) * targets // 256


def _chunk(rng: np.random.Generator, records: int) -> tuple[Any, int]:
    """A table of ``records`` random records and its checksum."""
    import pyarrow as pa

    words = rng.bit_generator.random_raw(-(-records * RECORD // 8))
    raw = words.view(np.uint8)[: records * RECORD].reshape(records, RECORD)
    keys = np.ascontiguousarray(raw[:, :KEY])
    values = np.ascontiguousarray(raw[:, KEY:])
    table = pa.table(
        {
            "k": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(KEY), records, [None, pa.py_buffer(keys)]
            ),
            "v": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(VALUE), records, [None, pa.py_buffer(values)]
            ),
        }
    )
    return table, _checksum(keys, values)


class _Reader:
    """Counts, checksums and checks the order of sorted record batches."""

    def __init__(self) -> None:
        self.count = 0
        self.checksum = 0
        self.ordered = True
        self.first: bytes | None = None
        self.last: bytes | None = None
        self._last_words: tuple[int, int] | None = None

    def read(self, batches: Iterable[Any]) -> None:
        for batch in batches:
            if len(batch) == 0:
                continue
            keys = _bytes_of(batch.column("k"))
            values = _bytes_of(batch.column("v"))
            high, low = _key_words(keys)
            step_up = (high[1:] > high[:-1]) | ((high[1:] == high[:-1]) & (low[1:] >= low[:-1]))
            if not step_up.all():
                self.ordered = False
            if self._last_words is not None and (int(high[0]), int(low[0])) < self._last_words:
                self.ordered = False
            self._last_words = (int(high[-1]), int(low[-1]))
            if self.first is None:
                self.first = keys[0].tobytes()
            self.last = keys[-1].tobytes()
            self.count += len(batch)
            self.checksum = (self.checksum + _checksum(keys, values)) % (1 << 64)


def sort_main(env: twister2.WorkerEnv) -> dict[str, Any]:
    """The job: generate this worker's share, sort it with everyone's, check and time it."""
    import pyarrow as pa

    from twister2.net import Plan
    from twister2.net.batch import ArrayKeyedGather

    spec = json.loads(env.args[0])
    me, n = env.worker_id, env.num_workers
    share = spec["records"] // n + (1 if me < spec["records"] % n else 0)
    rng = np.random.default_rng([spec["seed"], me])
    flow = env.dataflow
    gc.collect()
    sampler = RssSampler()
    idle_rss = sampler.peak
    sampler.start()
    env.barrier("sort.start")
    start = time.perf_counter()
    op = ArrayKeyedGather(flow, Plan.per_worker(n), "k", range_partitioner, sort=True)
    sent, sent_sum, generating = 0, 0, 0.0
    while sent < share:
        began = time.perf_counter()
        table, checksum = _chunk(rng, min(spec["chunk"], share - sent))
        generating += time.perf_counter() - began
        op.send_blocking(me, table)
        sent += len(table)
        sent_sum = (sent_sum + checksum) % (1 << 64)
        del table
    op.finish(me)
    op.wait()
    exchanged = time.perf_counter()
    exchange_peak = sampler.phase()
    pool = pa.default_memory_pool()
    pool_exchange = pool.max_memory()
    store = getattr(op, "_stores", {}).get(me)  # for the report only: how much spilled
    paths = list(getattr(store, "files", []))
    spilled, files = sum(p.stat().st_size for p in paths), len(paths)
    reader = _Reader()
    reader.read(op.result(me))
    done = time.perf_counter()
    sort_peak = sampler.phase()
    op.close()
    peak = sampler.stop()
    env.barrier("sort.end")
    return {
        "records_sent": sent,
        "checksum_sent": sent_sum,
        "records_out": reader.count,
        "checksum_out": reader.checksum,
        "ordered": reader.ordered,
        "first": reader.first.hex() if reader.first else None,
        "last": reader.last.hex() if reader.last else None,
        "idle_rss": idle_rss,
        "peak_rss": peak,
        "anon_peak": sampler.anon_peak,
        "file_peak": sampler.file_peak,
        "exchange_peak_rss": exchange_peak,
        "sort_peak_rss": sort_peak,
        "pool": pool.backend_name,
        "pool_peak_exchange": pool_exchange,
        "pool_peak": pool.max_memory(),
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "samples": sampler.samples,
        "seconds": done - start,
        "exchange_s": exchanged - start,
        "sort_s": done - exchanged,
        "generate_s": generating,
        "spilled_bytes": spilled,
        "spill_files": files,
    }


def run(
    cluster: str,
    workers: int,
    total: int,
    limit: int,
    chunk: int,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> str:
    records = total // RECORD
    spec = {"records": records, "chunk": chunk, "seed": seed}
    config: dict[str, Any] = {
        "net.spill.memory_bytes": limit,
        "network.recv_timeout": 3600.0,
        "master.barrier_timeout": 3600.0,
        **(extra or {}),
    }
    if cluster == "local":
        config["network.channel"] = "tcp"
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twister2-bench-") as logs:
        config["job.log_dir"] = logs
        result = twister2.run(
            sort_main, workers=workers, cluster=cluster, config=config, args=[json.dumps(spec)]
        )
    job_s = time.perf_counter() - began
    values: list[dict[str, Any]] = list(result.values)
    print(f"sort: {json.dumps(values)}", file=sys.stderr, flush=True)

    sent = sum(v["records_sent"] for v in values)
    out = sum(v["records_out"] for v in values)
    sums_match = sum(v["checksum_sent"] for v in values) % (1 << 64) == sum(
        v["checksum_out"] for v in values
    ) % (1 << 64)
    ranges = [(v["first"], v["last"]) for v in values if v["first"] is not None]
    across = all(ranges[i][1] <= ranges[i + 1][0] for i in range(len(ranges) - 1))
    ordered = all(v["ordered"] for v in values) and across
    complete = sent == records and out == records
    slowest = max(v["seconds"] for v in values)
    overhead = max(v["idle_rss"] for v in values)
    rows = []
    for w, v in enumerate(values):
        rows.append(
            [
                w,
                v["records_out"],
                f"{v['seconds']:.1f}",
                f"{v['exchange_s']:.1f}",
                f"{v['generate_s']:.1f}",
                f"{v['sort_s']:.1f}",
                f"{v['spilled_bytes'] / MIB:.0f} MiB in {v['spill_files']}",
                f"{v['idle_rss'] / MIB:.0f}",
                f"{v['exchange_peak_rss'] / MIB:.0f}",
                f"{v['sort_peak_rss'] / MIB:.0f}",
                f"{v['peak_rss'] / MIB:.0f}",
                f"{v['anon_peak'] / MIB:.0f} / {v['file_peak'] / MIB:.0f}",
                f"{v['maxrss'] / MIB:.0f}",
                f"{v['pool_peak'] / MIB:.0f} ({v['pool']})",
                yes_no(v["peak_rss"] <= limit + overhead),
            ]
        )
    per_worker = markdown_table(
        [
            "worker",
            "records out",
            "wall s",
            "exchange s",
            "of which generating s",
            "sorted read s",
            "spilled",
            "idle RSS MiB (overhead)",
            "peak RSS MiB, exchange",
            "peak RSS MiB, sorted read",
            "peak RSS MiB (sampled)",
            "peak RssAnon / RssFile MiB",
            "ru_maxrss MiB",
            "Arrow pool peak MiB",
            f"peak <= limit + overhead ({limit / MIB:g} + {overhead / MIB:.0f} MiB)",
        ],
        rows,
    )
    summary = markdown_table(
        [
            "records",
            "bytes",
            "workers",
            "limit per worker",
            "records/s",
            "MB/s (10^6)",
            "records/s w/o generation",
            "sorted",
            "complete",
            "checksum",
            "job wall s",
        ],
        [
            [
                records,
                f"{records * RECORD / 1e9:g} GB",
                workers,
                f"{limit / MIB:g} MiB",
                f"{records / slowest:,.0f}",
                f"{records * RECORD / slowest / 1e6:.1f}",
                f"{records / max(v['seconds'] - v['generate_s'] for v in values):,.0f}",
                yes_no(ordered),
                yes_no(complete),
                "match" if sums_match else "MISMATCH",
                f"{job_s:.1f}",
            ]
        ],
    )
    settings = "".join(f", `{k}={v}`" for k, v in (extra or {}).items())
    notes = (
        f"{records:,} records of {RECORD} bytes ({KEY}-byte `fixed_size_binary` keys, "
        f"{VALUE}-byte values), generated in chunks of {chunk:,} records in the workers, sorted "
        f"by `ArrayKeyedGather(sort=True)` with a range partitioner on a {workers}-worker "
        f"`{cluster}` job (channel {'tcp' if cluster == 'local' else 'mpi'}), "
        f"`net.spill.memory_bytes={limit}` per worker{settings}. records/s = records / the slowest "
        f"worker's wall time (barrier to the end of its sorted read; generation included, and "
        f"also shown without it). Overhead = a worker's RSS just before the sort (NumPy, pyarrow "
        f"and the array tier imported, the dataflow started): the largest of the workers', "
        f"{overhead / MIB:.0f} MiB."
    )
    failed = [] if ordered and complete and sums_match else [CHECK_FAILED]
    parts = ["### Sort (sorted keyed gather, array tier)", notes, summary, per_worker, *failed]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_options(parser)
    parser.add_argument("--gb", type=float, help="total data in GB, 10^9 bytes (default 2)")
    parser.add_argument("--limit-mib", type=float, help="spill limit per worker (default 256)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cluster", choices=("local", "mpi"), default="local")
    parser.add_argument("--chunk", type=int, help="records per generated chunk (default 100000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="extra job config, key=value"
    )
    args = parser.parse_args(argv)
    extra = dict(parse_assignment(item) for item in args.config)
    total = int((args.gb or (0.02 if args.quick else 2.0)) * 1e9)
    limit = int((args.limit_mib or (4 if args.quick else 256)) * MIB)
    chunk = args.chunk or (20_000 if args.quick else 100_000)
    report = run(args.cluster, args.workers, total, limit, chunk, args.seed, extra)
    emit(report, args.out)
    return 1 if CHECK_FAILED in report else 0


if __name__ == "__main__":
    sys.exit(main())
