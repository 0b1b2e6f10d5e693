"""The in-process channel: workers are threads of one process. For fast unit tests only.

Values are serialised and rebuilt on delivery exactly as on a real channel, so a test that passes
here does not depend on sharing objects between sender and receiver.

Example
-------
>>> a, b = InprocChannel.group(2)
>>> a.send([1, 2, 3], dest=1)
>>> b.recv_from()
(0, [1, 2, 3])
"""

from __future__ import annotations

from typing import Any

from twister2.net.channel import ANY_SOURCE, Channel, Mailbox
from twister2.net.serialization import dumps, loads

__all__ = ["InprocChannel"]


class InprocChannel(Channel):
    """One member of a group of channels that share a process."""

    scheme = "inproc"

    def __init__(self, rank: int, mailboxes: list[Mailbox], default_timeout: float | None) -> None:
        super().__init__(rank, len(mailboxes), default_timeout)
        self._mailboxes = mailboxes

    @classmethod
    def group(cls, size: int, default_timeout: float | None = 60.0) -> list[InprocChannel]:
        """``size`` connected channels, ranks 0..size-1."""
        boxes = [Mailbox(rank) for rank in range(size)]
        return [cls(rank, boxes, default_timeout) for rank in range(size)]

    def send(self, obj: Any, dest: int, tag: int = 0) -> None:
        self._check_peer(dest, "destination")
        head, buffers = dumps(obj)
        copies = [bytearray(b) for b in buffers]
        nbytes = len(head) + sum(len(c) for c in copies)
        self._mailboxes[dest].put(self.rank, tag, loads(head, copies), nbytes)

    def recv_from(
        self, source: int = ANY_SOURCE, tag: int = 0, timeout: float | None = None
    ) -> tuple[int, Any]:
        if source != ANY_SOURCE:
            self._check_peer(source, "source")
        return self._mailboxes[self.rank].get(source, tag, self._timeout(timeout))

    def close(self) -> None:
        self._mailboxes[self.rank].close()
