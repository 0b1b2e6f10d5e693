"""Tables, partitions and combiners in one process; the package's doctests."""

from __future__ import annotations

import doctest
import importlib
import pickle

import numpy as np
import pytest

from twister2.harp import MAX, MIN, REPLACE, SUM, CombineError, Partition, Table, combiner


@pytest.mark.parametrize(
    "module", ["twister2.harp.table", "twister2.harp.collectives", "twister2.harp.worker"]
)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0


def test_add_combines_equal_ids_without_touching_the_inputs() -> None:
    a, b = np.array([1.0, 5.0]), np.array([3.0, 2.0])
    for name, want in [("sum", [4.0, 7.0]), ("min", [1.0, 2.0]), ("max", [3.0, 5.0])]:
        table = Table(name, {0: a})
        table.add(0, b)
        assert table[0].tolist() == want
    assert a.tolist() == [1.0, 5.0] and b.tolist() == [3.0, 2.0]
    table = Table("replace", [(1, "old"), (1, "new")])
    assert table.to_dict() == {1: "new"}


def test_function_combiner_and_objects() -> None:
    table = Table(lambda old, new: old + new, {2: [1]})
    table.add(2, [2])
    table.add(3, "x")
    assert table.to_dict() == {2: [1, 2], 3: "x"}
    assert table.combiner.name == "<lambda>"


def test_merge_folds_in_order_and_in_place_after_the_first_step() -> None:
    first = np.ones(3)
    parts = [(f"from worker {i}", np.full(3, float(i + 1))) for i in range(4)]
    parts[0] = ("from worker 0", first)
    out = SUM.merge(9, parts)
    assert out.tolist() == [10.0, 10.0, 10.0] and first.tolist() == [1.0, 1.0, 1.0]
    assert REPLACE.merge(9, parts) is parts[-1][1]
    assert MIN.merge(1, [("a", 3), ("b", 1)]) == 1 and MAX.merge(1, [("a", 3), ("b", 1)]) == 3


@pytest.mark.parametrize("name", ["sum", "min", "max"])
def test_mismatched_shapes_name_the_partition_and_the_shapes(name: str) -> None:
    with pytest.raises(CombineError, match=rf"partition 4 with {name}.*\(2,\).*\(3,\)"):
        Table(name, {4: np.zeros(2)}).add(4, np.zeros(3))
    with pytest.raises(CombineError, match=r"partition 1 .*a scalar in the table but \(2,\)"):
        Table(name, {1: 5}).add(1, np.zeros(2))
    with pytest.raises(
        CombineError,
        match=r"partition 3 with sum on worker 2: shape \(1,\) from worker 0 but \(2,\) from "
        r"worker 1",
    ):
        SUM.merge(3, [("from worker 0", np.zeros(1)), ("from worker 1", np.zeros(2))], worker=2)


def test_a_failing_function_is_a_combine_error_naming_the_partition() -> None:
    def boom(old: object, new: object) -> object:
        raise ArithmeticError("no")

    table = Table(combiner(boom), {5: 1})
    with pytest.raises(CombineError, match=r"partition 5 with boom: ArithmeticError: no"):
        table.add(5, 2)


def test_bad_ids_and_combiners() -> None:
    table = Table()
    with pytest.raises(TypeError, match="partition id is an int, got str"):
        table.add("a", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got bool"):
        table[True] = 1
    table[np.int64(3)] = 1
    assert table.ids() == [3] and isinstance(table.ids()[0], int)
    with pytest.raises(KeyError, match=r"no partition 4 in this table \(its ids: \[3\]\)"):
        table[4]
    with pytest.raises(ValueError, match=r"unknown combiner 'mean'.*sum, min, max, replace"):
        Table("mean")
    with pytest.raises(TypeError, match="a combiner must be"):
        Table(3)  # type: ignore[arg-type]


def test_table_api() -> None:
    table = Table("sum", {2: 20, 0: 0, 1: 10})
    assert [p.id for p in table] == [0, 1, 2] and table.partitions()[1] == Partition(1, 10)
    assert len(table) == 3 and 1 in table and 5 not in table
    assert table.get(5, "none") == "none" and table.remove(1) == 10 and table.ids() == [0, 2]
    copy = table.copy()
    copy[7] = 70
    assert 7 not in table and table.empty().combiner is SUM and len(table.empty()) == 0
    assert repr(table) == "Table(sum, 2 partitions: [0, 2])"


def test_tables_and_builtin_combiners_pickle() -> None:
    table = Table("max", {0: np.arange(3)})
    back = pickle.loads(pickle.dumps(table))
    assert back.combiner is MAX and back[0].tolist() == [0, 1, 2]


def test_every_harp_worker_subclass_gets_its_own_entry_function() -> None:
    from twister2.harp import HarpWorker

    class Mine(HarpWorker):
        def map_collective(self) -> int:
            return self.worker_id

    assert Mine.main.__qualname__.endswith("Mine.main") and Mine.main.__module__ == __name__
    assert not hasattr(HarpWorker, "main")
    with pytest.raises(NotImplementedError, match=r"must implement map_collective\(\)"):
        HarpWorker.map_collective(Mine.__new__(Mine))


def test_merge_overwrites_only_the_parts_it_owns_and_keeps_the_dtype() -> None:
    local, received = np.array([1.0, 2.0]), np.array([10.0, 20.0])
    out = SUM.merge(0, [("here", local), ("there", received)], owned=[False, True])
    assert out is received and out.tolist() == [11.0, 22.0] and local.tolist() == [1.0, 2.0]
    small = np.array([1.0, 2.0], dtype=np.float32)  # float32 + float64 is float64: no reuse
    out = SUM.merge(0, [("here", np.array([0.5, 0.5])), ("there", small)], owned=[False, True])
    assert out.dtype == np.float64 and out is not small and small.tolist() == [1.0, 2.0]
    parts = [("a", np.array([3, 1])), ("b", np.array([2, 5])), ("c", np.array([4, 0]))]
    assert MIN.merge(1, parts, owned=[False, True, True]).tolist() == [2, 0]
    assert parts[0][1].tolist() == [3, 1]
