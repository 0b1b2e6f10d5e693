"""The entry point of a Harp job: subclass :class:`HarpWorker` and run ``YourWorker.main``.

Like Harp's ``CollectiveMapper``, a :class:`HarpWorker` *is* the worker's collectives (it is a
:class:`~twister2.harp.Harp`): ``map_collective`` calls ``self.allreduce(...)``,
``self.rotate(...)`` and the others, and has the job's environment as ``self.env``.

Example
-------
A job file::

    import numpy as np
    import twister2
    from twister2.harp import HarpWorker, Table

    class Hello(HarpWorker):
        def map_collective(self):
            table = Table("sum", {0: np.array([self.worker_id])})
            return int(self.allreduce(table)[0][0])

    if __name__ == "__main__":
        result = twister2.run(Hello.main, workers=4)
        assert result.values == [6, 6, 6, 6]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from twister2.harp.collectives import Harp
from twister2.worker.env import WorkerEnv

__all__ = ["HarpWorker"]


class HarpWorker(Harp):
    """A Harp job's worker: implement :meth:`map_collective`; ``twister2.run(Sub.main, ...)``.

    Every subclass gets ``main(env)``, a function of the job's environment that makes the worker
    and returns what ``map_collective`` returns (the worker's value in the job's result). It is
    made per subclass so that worker processes can import it by the subclass's own name.

    Attributes
    ----------
    env:
        The job as this worker sees it (config, arguments, logger, the raw channel...).
    """

    main: ClassVar[Callable[[WorkerEnv], Any]]

    def __init__(
        self, env: WorkerEnv, *, context: str = "main", timeout: float | None = None
    ) -> None:
        super().__init__(env.dataflow, barrier=env.barrier, context=context, timeout=timeout)
        self.env = env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

        def main(env: WorkerEnv) -> Any:
            return cls(env).map_collective()

        main.__module__ = cls.__module__
        main.__name__ = "main"
        main.__qualname__ = f"{cls.__qualname__}.main"
        main.__doc__ = f"Run {cls.__qualname__}.map_collective on this worker (a job's entry)."
        cls.main = staticmethod(main)

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """The worker's logger (its lines carry the job and worker id)."""
        return self.env.logger

    def map_collective(self) -> Any:
        """The worker's program: read its data, compute, and call the collectives."""
        msg = f"{type(self).__qualname__} must implement map_collective()"
        raise NotImplementedError(msg)
