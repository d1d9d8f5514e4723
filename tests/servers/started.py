"""The context manager the in-process test servers share: ``with`` starts, leaving stops.

``__enter__`` gives what ``start()`` returns (the server itself, or for Chromium the
browser it launched); ``__exit__`` calls ``stop()``, whatever the block raised.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["Started"]

T_co = TypeVar("T_co", covariant=True)


class Started(ABC, Generic[T_co]):
    """A server run for the length of a ``with`` block."""

    @abstractmethod
    def start(self) -> T_co:
        """Start serving; return what the ``with`` block works with."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and free the port (and threads, and processes)."""

    def __enter__(self) -> T_co:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
