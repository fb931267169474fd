"""The supervisor's log file: append, rotate by rename at line boundaries.

``LogWriter(path, max_size=, keep=, timestamps=)`` appends what the app
writes. Rotation renames ``path`` to ``path.1`` (``path.1`` to ``path.2``
... up to ``keep``) and opens a new file, never copy-and-truncate. On a
full disk ``write`` deletes the oldest archive and, if that is not enough,
returns False: the caller stops reading until ``retry()`` succeeds, so the
app blocks on its pipe instead of losing lines.
"""

from __future__ import annotations

import errno
import os
import time

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class LogWriter:
    def __init__(
        self, path: str, *, max_size: int = 10 << 20, keep: int = 5, timestamps: bool = False
    ) -> None:
        self.path, self.max_size, self.keep = path, max_size, keep
        self.timestamps = timestamps
        self._fd = -1
        self._size = 0
        self._pending = b""  # accepted, not yet on disk (disk full)
        self._at_line_start = True
        self.disk_full = False
        self.reopen()

    def fileno(self) -> int:
        return self._fd

    def reopen(self) -> None:
        """Open ``path`` again (after an external mv, or a rotation)."""
        fd = os.open(self.path, _FLAGS, 0o644)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def rotate(self) -> None:
        for n in range(self.keep - 1, 0, -1):
            try:
                os.rename(f"{self.path}.{n}", f"{self.path}.{n + 1}")
            except FileNotFoundError:
                pass
        if self.keep > 0:
            os.rename(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self.reopen()

    def write(self, data: bytes) -> bool:
        """Append ``data``; False when the disk is full (nothing is lost:
        it is kept and written by ``retry``)."""
        if self.timestamps:
            data = self._stamp(data)
        self._pending += data
        return self.retry()

    def retry(self) -> bool:
        while self._pending:
            chunk = self._chunk()
            if not chunk:  # the next line does not fit: rotate first
                self.rotate()
                continue
            try:
                written = os.write(self._fd, chunk)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                if not self._drop_oldest_archive():
                    self.disk_full = True
                    return False
                continue
            self._pending = self._pending[written:]
            self._size += written
            if self._size >= self.max_size and chunk[written - 1 : written] == b"\n":
                self.rotate()
        self.disk_full = False
        return True

    def _chunk(self) -> bytes:
        """What fits before the size limit, cut after the last newline in it
        (a line longer than the limit is split at the limit, only there)."""
        room = max(1, self.max_size - self._size)
        if len(self._pending) <= room:
            return self._pending
        head = self._pending[:room]
        cut = head.rfind(b"\n")
        if cut >= 0:
            return head[: cut + 1]
        return head if self._size == 0 else b""

    def _stamp(self, data: bytes) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z ").encode()
        lines = data.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            if i == len(lines) - 1 and not line:
                break
            start = self._at_line_start if i == 0 else True
            out.append((stamp if start else b"") + line)
        self._at_line_start = data.endswith(b"\n")
        return b"\n".join(out) + (b"\n" if data.endswith(b"\n") else b"")

    def _drop_oldest_archive(self) -> bool:
        for n in range(self.keep, 0, -1):
            try:
                os.unlink(f"{self.path}.{n}")
                return True
            except FileNotFoundError:
                continue
        return False

    def flush(self) -> None:
        """Writes are unbuffered: nothing to do but keep the interface."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
