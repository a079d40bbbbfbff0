"""What every source and sink kind shares: the URL it was opened with, a check of that URL's form, and
closing as a context manager. ``source_base.Source`` and ``sink_base.Sink`` build on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from rifestream.io.endpoint import check_network_url


class Kind(ABC):
    url: str

    @classmethod
    def check_url(cls, url: str) -> None:
        """Raise ``BadUrl`` when ``url`` is not in a form this kind takes (no I/O; the config calls it).
        By default a ``scheme://`` URL needs a port from 1 to 65535 if it names one."""
        if "://" in url:
            check_network_url(url)

    @abstractmethod
    def close(self) -> None:
        """Release what it holds; safe to call twice and from another thread."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
