"""The local runtime's console: every line it prints goes through one ``Console``.

- ``say``: what the runtime does (where it listens, scale decisions, reloads), on stdout, each
  line stamped with the local time (``12:04:05``); ``--quiet`` silences it.
- ``warn``: what went wrong (a pod that failed, a file that does not load), on stderr, stamped;
  always shown.
- ``app``: the apps' own output, already prefixed with their pod's name as ``docker compose``
  prints it (``hello-00001-pod-1 | listening``); ``--quiet`` silences it.
- ``access``: a line per request with ``--access-log`` (Host, request line, status, bytes,
  time), stamped.

A message of several lines is stamped on its first line only; the others are indented.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Console"]


class Console:
    def __init__(self, *, quiet: bool = False, verbose: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.out = out
        self.err = err
        self.clock = clock

    def _write(self, stream: TextIO | None, fallback: TextIO, text: str) -> None:
        target = stream if stream is not None else fallback
        try:
            target.write(text)
            target.flush()
        except (OSError, ValueError):  # a closed console: the runtime goes on
            pass

    def stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.clock()))

    def _stamped(self, line: str) -> str:
        return f"{self.stamp()} {line.rstrip(chr(10))}\n"

    def say(self, line: str) -> None:
        if not self.quiet:
            self._write(self.out, sys.stdout, self._stamped(line))

    def detail(self, line: str) -> None:
        """Only with ``--verbose``."""
        if self.verbose and not self.quiet:
            self._write(self.out, sys.stdout, self._stamped(line))

    def warn(self, line: str) -> None:
        self._write(self.err, sys.stderr, self._stamped(line))

    def app(self, text: str) -> None:
        if not self.quiet:
            self._write(self.out, sys.stdout, text)

    def access(self, line: str) -> None:
        self._write(self.out, sys.stdout, self._stamped(line))
