"""ops/logsink.py: lines logged on a loop go out together at the end of its iteration, whole,
in order, at most PIPE_BUF bytes a write; none is lost on a stop, and processes sharing one
pipe or file never interleave theirs."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from miaopi_server.ops.logsink import PIPE_BUF, LineWriter


class _Recorded(io.RawIOBase):
    """A byte stream that keeps each write() as it came: where one write ends is what the
    kernel sees of a pipe write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.writes.append(bytes(b))
        return len(b)


def _stderr_like() -> tuple[io.TextIOWrapper, _Recorded]:
    """A text file over an unbuffered byte stream, as sys.stderr is."""
    raw = _Recorded()
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True)
    return text, raw


def _line(i: int, size: int) -> bytes:
    head = f'{{"n":{i},"pad":"'
    return (head + "x" * max(0, size - len(head) - 3) + '"}\n').encode()


class TestOnALoop:
    def test_lines_wait_for_the_iteration_then_go_out_in_one_write(self) -> None:
        file, raw = _stderr_like()
        writer = LineWriter(file)

        async def main() -> None:
            for i in range(3):
                writer.msg(_line(i, 40))
            assert raw.writes == []
            await asyncio.sleep(0)
            assert raw.writes == [b"".join(_line(i, 40) for i in range(3))]

        asyncio.run(main())

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=8, max_value=3 * PIPE_BUF), min_size=1, max_size=40))
    def test_every_write_is_whole_lines_and_at_most_pipe_buf(self, sizes: list[int]) -> None:
        """Lines of any length: in order, whole; a write longer than PIPE_BUF is one line."""
        file, raw = _stderr_like()
        writer = LineWriter(file)
        lines = [_line(i, size) for i, size in enumerate(sizes)]

        async def main() -> None:
            for line in lines:
                writer.msg(line)
            await asyncio.sleep(0)

        asyncio.run(main())
        assert b"".join(raw.writes) == b"".join(lines)
        for chunk in raw.writes:
            assert chunk.endswith(b"\n")
            assert len(chunk) <= PIPE_BUF or chunk.count(b"\n") == 1

    def test_a_line_from_another_thread_goes_out_at_once_after_the_pending_ones(self) -> None:
        file, raw = _stderr_like()
        writer = LineWriter(file)

        async def main() -> None:
            writer.msg(b"loop\n")
            thread = threading.Thread(target=writer.msg, args=(b"thread\n",))
            thread.start()
            thread.join()
            assert raw.writes == [b"loop\nthread\n"]
            writer.msg(b"loop again\n")
            await asyncio.sleep(0)
            assert raw.writes == [b"loop\nthread\n", b"loop again\n"]

        asyncio.run(main())

    @given(
        st.lists(st.integers(min_value=8, max_value=PIPE_BUF), min_size=1, max_size=30),
        st.integers(min_value=8, max_value=2 * PIPE_BUF),
    )
    def test_a_thread_line_after_pending_ones_stays_within_pipe_buf(
        self, sizes: list[int], thread_size: int
    ) -> None:
        """A line from another thread goes out after the loop's pending lines, in the same
        write only while that write stays within PIPE_BUF."""
        file, raw = _stderr_like()
        writer = LineWriter(file)
        lines = [_line(i, size) for i, size in enumerate(sizes)]
        from_thread = _line(len(sizes), thread_size)

        async def main() -> None:
            for line in lines:
                writer.msg(line)
            thread = threading.Thread(target=writer.msg, args=(from_thread,))
            thread.start()
            thread.join()
            await asyncio.sleep(0)

        asyncio.run(main())
        assert b"".join(raw.writes) == b"".join([*lines, from_thread])
        for chunk in raw.writes:
            assert chunk.endswith(b"\n")
            assert len(chunk) <= PIPE_BUF or chunk.count(b"\n") == 1

    def test_a_file_that_fails_later_raises_at_the_next_line_as_before(self) -> None:
        """The deferred write has nobody to raise to; the next line logged raises, as every
        line did when each was written at once."""
        file, _raw = _stderr_like()
        writer = LineWriter(file)

        async def main() -> None:
            writer.msg(b"a\n")
            file.close()
            await asyncio.sleep(0)  # the deferred write fails quietly
            try:
                writer.msg(b"b\n")
            except ValueError:
                return
            raise AssertionError("the closed file went unnoticed")

        asyncio.run(main())


class TestOffALoop:
    def test_without_a_loop_each_line_is_written_at_once(self) -> None:
        file, raw = _stderr_like()
        writer = LineWriter(file)
        writer.msg(b"one\n")
        writer.msg(b"two\n")
        assert raw.writes == [b"one\n", b"two\n"]

    def test_a_json_dumps_line_is_encoded_as_the_text_file_encodes_it(self) -> None:
        """A str line (a lone surrogate: json.dumps' path) becomes the bytes stderr's own
        encoder (backslashreplace) wrote for it."""
        file, raw = _stderr_like()
        old_file, old_raw = _stderr_like()
        line = '{"v": "\udc80 值"}\n'
        LineWriter(file).msg(line)
        old_file.write(line)
        assert raw.writes == old_raw.writes == [b'{"v": "\\udc80 \xe5\x80\xbc"}\n']

    def test_a_text_only_file_gets_text(self) -> None:
        out = io.StringIO()
        writer = LineWriter(out)
        writer.msg('{"a":"值"}\n'.encode())
        assert out.getvalue() == '{"a":"值"}\n'


def _child(body: str) -> str:
    """A Python program whose logs go through the server's set-up to its stderr."""
    return textwrap.dedent(
        """
        import asyncio, os, signal, sys
        import structlog
        from miaopi_server.ops import logs
        logs.configure("json", "info")
        log = structlog.get_logger("t")
        """
    ) + textwrap.dedent(body)


def _run(body: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _child(body)], capture_output=True, text=True, timeout=60, **kw
    )


def _events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


class TestNothingIsLost:
    def test_on_a_normal_stop_every_line_comes_out_in_order(self) -> None:
        done = _run(
            """
            async def main():
                for i in range(300):
                    log.info("line", n=i)
                    if i % 7 == 0:
                        await asyncio.sleep(0)
                log.info("line", n=300)  # the last, logged as the loop is about to stop
            asyncio.run(main())
            """
        )
        assert done.returncode == 0, done.stderr
        assert [e["n"] for e in _events(done.stderr)] == list(range(301))

    def test_a_crash_out_of_the_loop_keeps_the_lines_before_it(self) -> None:
        done = _run(
            """
            async def main():
                for i in range(5):
                    log.info("line", n=i)
                raise RuntimeError("crash")
            asyncio.run(main())
            """
        )
        assert done.returncode == 1
        assert [e["n"] for e in _events(done.stderr)] == list(range(5))
        assert "RuntimeError: crash" in done.stderr

    def test_a_loop_closed_before_its_flush_ran_still_has_its_lines_written_at_exit(
        self,
    ) -> None:
        done = _run(
            """
            loop = asyncio.new_event_loop()
            def last():
                log.info("line", n=1)
                loop.stop()
            loop.call_soon(last)
            loop.run_forever()
            loop.close()  # the queued flush never runs
            print("closed", file=sys.stdout, flush=True)
            """
        )
        assert done.returncode == 0, done.stderr
        assert [e["n"] for e in _events(done.stderr)] == [1]

    def test_sigterm_handled_by_the_loop_stops_with_every_line(self, tmp_path: Path) -> None:
        ready = tmp_path / "ready"
        proc = subprocess.Popen(
            [sys.executable, "-c", _child(
                f"""
                async def main():
                    stop = asyncio.Event()
                    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
                    for i in range(50):
                        log.info("line", n=i)
                    open({str(ready)!r}, "w").close()
                    await stop.wait()
                    log.info("line", n=50)
                asyncio.run(main())
                """
            )],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert [e["n"] for e in _events(err)] == list(range(51))

    def test_a_fork_does_not_write_pending_lines_twice(self) -> None:
        done = _run(
            """
            async def main():
                log.info("line", n=0)  # pending when the fork comes
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)
            asyncio.run(main())
            """
        )
        assert done.returncode == 0, done.stderr
        assert [e["n"] for e in _events(done.stderr)] == [0]


_WRITER = """
import random
rng = random.Random({seed})
async def main():
    for i in range({count}):
        log.info("line", who={seed}, n=i, pad="值" * rng.randrange(0, 700))
        if rng.random() < 0.05:
            await asyncio.sleep(0)
asyncio.run(main())
"""


class TestProcessesSharingOneFile:
    def _check(self, text: str, writers: int, count: int) -> None:
        seen: dict[int, list[int]] = {w: [] for w in range(writers)}
        for line in text.splitlines():
            event = json.loads(line)  # a line another process cut into would not parse
            seen[event["who"]].append(event["n"])
        assert seen == {w: list(range(count)) for w in range(writers)}

    def test_lines_never_interleave_in_a_pipe_read_slowly(self) -> None:
        """The pipe fills up (the reader is slow), writers block mid-stream; still whole."""
        writers, count = 3, 1500
        read, write = os.pipe()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _child(_WRITER.format(seed=w, count=count))],
                stderr=write,
            )
            for w in range(writers)
        ]
        os.close(write)
        chunks = []
        with os.fdopen(read, "rb") as pipe:
            while chunk := pipe.read1(1024):
                chunks.append(chunk)
                time.sleep(0.0005)
        assert [p.wait(timeout=60) for p in procs] == [0] * writers
        self._check(b"".join(chunks).decode(), writers, count)

    def test_lines_never_interleave_in_a_shared_file(self, tmp_path: Path) -> None:
        writers, count = 3, 1500
        path = tmp_path / "log"
        with path.open("wb") as out:
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", _child(_WRITER.format(seed=w, count=count))],
                    stderr=out,
                )
                for w in range(writers)
            ]
            assert [p.wait(timeout=60) for p in procs] == [0] * writers
        self._check(path.read_text(), writers, count)
