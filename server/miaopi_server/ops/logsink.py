"""Where JSON log lines go: a file (stderr), in whole lines, several lines per write.

One write() per line was a syscall on the event loop's thread for every Decide, and one that
lets go of the GIL: the audit writer thread took it and the loop then waited to get it back.
Lines logged on an event loop now wait for the end of that loop iteration (a call_soon: the
callbacks already queued run first) and go out together:

- a crash loses at most the lines of the loop iteration it happens in. An exception or a
  normal stop loses none: asyncio.run runs the loop once more while it shuts down, and what is
  still pending is written at exit and before a fork. Only a death Python cannot see (SIGKILL,
  a crash in C code) loses lines, and only the last iteration's: a few ms of lines at most,
  since an iteration that blocks the loop longer would stall every RPC too, and heavy work
  (catalog loads, the audit writer) runs on threads for that reason;
- every write holds whole lines and at most PIPE_BUF bytes (unless one line is longer),
  since several `--workers` processes share stderr and the kernel keeps a pipe write of up to
  PIPE_BUF bytes in one piece: their lines never interleave;
- a line logged off the loop (another thread, no loop running) is written at once, after the
  lines still pending, so it is never held back by a loop that is not its own.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import errno
import os
import select
import threading
import weakref
from typing import IO, Any

# The kernel writes this many bytes to a pipe in one piece (POSIX: at least 512; Linux 4096).
PIPE_BUF = getattr(select, "PIPE_BUF", 512)


class LineWriter:
    """structlog's logger for the lines ops/logline.py renders (bytes, newline included)."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._lock = threading.RLock()
        self._pending: list[bytes] = []
        self._size = 0
        self._flush_on: asyncio.AbstractEventLoop | None = None  # a flush queued on this loop
        self._deferred_failed = False
        self._encoding = getattr(file, "encoding", None) or "utf-8"
        self._errors = getattr(file, "errors", None) or "strict"
        binary = getattr(file, "buffer", None)
        # UTF-8 bytes go to the file's own byte stream; another encoding (or a StringIO, in
        # tests) gets text, one line per write, as structlog's WriteLogger wrote it.
        self._binary: IO[bytes] | None = (
            binary if binary is not None and codecs.lookup(self._encoding).name == "utf-8" else None
        )
        _WRITERS.add(self)

    def msg(self, line: bytes | str) -> None:
        """Write `line` (newline included) now, or with the rest of this loop iteration's."""
        if self._binary is None:
            self._write_text(line)
            return
        if isinstance(line, str):  # json.dumps' line: encoded as the text file would have
            line = line.encode(self._encoding, self._errors)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            flush_on = self._flush_on
            if loop is None or (flush_on is not None and flush_on is not loop):
                self._write_after_pending(line)
                if flush_on is not None and flush_on.is_closed():  # its flush will never run
                    self._flush_on = None
                return
            if self._deferred_failed:  # the file failed: let the next lines raise, as before
                self._write_after_pending(line)
                self._deferred_failed = False
                return
            if self._pending and self._size + len(line) > PIPE_BUF:
                self._write_pending()
            self._pending.append(line)
            self._size += len(line)
            if flush_on is None:
                loop.call_soon(self._flush_deferred)
                self._flush_on = loop

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def flush(self) -> None:
        """Write whatever is pending."""
        with self._lock:
            self._flush_on = None
            if self._pending:
                self._write_pending()

    def _flush_deferred(self) -> None:
        try:
            self.flush()
        except (OSError, ValueError):  # stderr gone or closed: nobody to raise to here
            self._deferred_failed = True

    def _write_after_pending(self, line: bytes) -> None:
        """Write `line` now, after the lines still pending: with them when the write stays
        within PIPE_BUF, else in a write of its own after theirs."""
        if self._pending and self._size + len(line) > PIPE_BUF:
            self._write_pending()
        self._pending.append(line)
        self._write_pending()

    def _write_pending(self) -> None:
        """One write of the pending lines; they are dropped if it fails, not retried."""
        assert self._binary is not None
        chunk = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        self._file.flush()  # text written to the file itself (print) goes first
        view = memoryview(chunk)
        while view:  # stderr's byte stream is unbuffered (a FileIO): a write may be partial
            written = self._binary.write(view)
            if not written:  # a non-blocking stderr that is full
                raise BlockingIOError(errno.EAGAIN, "log file would block")
            view = view[written:]
        self._binary.flush()

    def _write_text(self, line: bytes | str) -> None:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
        with self._lock:
            self._file.write(text)
            self._file.flush()

    def _forget_pending(self) -> None:
        """In a forked child: the parent writes its own lines."""
        self._lock = threading.RLock()
        self._pending.clear()
        self._size = 0
        self._flush_on = None


_WRITERS: weakref.WeakSet[LineWriter] = weakref.WeakSet()


def flush_all(*_: Any) -> None:
    """Write every writer's pending lines (at exit, before a fork); a closed file is skipped."""
    for writer in list(_WRITERS):
        with contextlib.suppress(OSError, ValueError):
            writer.flush()


def _forget_all() -> None:
    for writer in list(_WRITERS):
        writer._forget_pending()


atexit.register(flush_all)
os.register_at_fork(before=flush_all, after_in_child=_forget_all)
