"""A log file that rotates itself: what the supervisor writes its app's
output into.

The supervisor reads the app's stdout and stderr from one pipe, in chunks,
and hands every chunk to ``LogWriter.write``. The writer appends it with one
``write(2)`` per chunk and, when the file would grow past ``max_size``,
rotates by rename at a line boundary (svlogd's and multilog's way:
``PATH`` -> ``PATH.1`` -> ... -> ``PATH.keep``, the oldest deleted). It never
copies and truncates: logrotate's copytruncate loses the lines written
between its copy and its truncate.

Lines are kept whole: the trailing part of a line that has not ended yet is
held back until its newline arrives, so that a rotation never falls inside
it. Only a line longer than ``max_size`` is split, at the size limit and
nowhere else. A held-back line is written by ``flush()`` (the supervisor
calls it when the app exits and when it stops), which ends it with a
newline so that the next run's first line starts a line of its own.

A full disk loses nothing (multilog, svlogd): on ENOSPC or EDQUOT the writer
deletes its oldest archive and tries again; when that is not enough,
``write`` returns False and keeps the bytes that did not go out (a short
write is counted, so nothing is written twice). The supervisor then stops
reading the pipe, the pipe fills, and the app blocks in its next write
until ``retry()`` succeeds.

Only os, errno and time are imported: the supervisor stays small.
"""

from __future__ import annotations

import errno
import os
import time

from .errors import DaemonError, UnsafeFileError

_FULL = (errno.ENOSPC, errno.EDQUOT)
# O_NOFOLLOW: a symlink planted at PATH is refused (ELOOP), not followed into
# a file of someone else's (CVE-2020-14367 and RELIABILITY 1 for pidfiles;
# the same holds for a log opened as root). O_NONBLOCK: a FIFO at PATH
# cannot block the open (RELIABILITY 3); the file is then refused as not
# regular. O_NONBLOCK has no effect on a regular file.
_OPEN = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class LogWriter:
    """Append chunks of output to ``path``, rotating at ``max_size`` bytes
    (0: never) and keeping ``keep`` archives. With ``timestamps`` every line
    starts with its arrival time, ISO 8601 in local time with the offset,
    to the millisecond (``2026-12-02T01:20:00.123+01:00 ``).

    The writer owns one fd, to the current ``path``; it is opened at once,
    created with ``mode`` when missing (chmod'ed, whatever the umask).
    """

    def __init__(
        self,
        path: str,
        *,
        max_size: int = 10 * 2**20,
        keep: int = 5,
        timestamps: bool = False,
        mode: int = 0o644,
        service_uid: int | None = None,
    ) -> None:
        if max_size < 0 or keep < 0:
            raise ValueError("max_size and keep must not be negative")
        self.path = path
        self.max_size = max_size
        self.keep = keep
        self.timestamps = timestamps
        self.mode = mode
        #: As root: the user the app runs as, whose directory may hold the log.
        self.service_uid = service_uid
        self._fd = -1
        self._size = 0  # bytes in the current file
        self._open_line = False  # the file ends inside a line that may go on there
        self._buffer = b""  # formatted, not written yet: a held line, or what a full disk refused
        self._at_line_start = True  # the next byte read from the pipe starts a line
        self._rotate_wanted = False
        self._disk_full = False
        self._stamp_second = -1
        self._stamp_parts = ("", "")
        self._open()

    def fileno(self) -> int:
        """The current file's fd (-1 while a full disk keeps it from being
        created)."""
        return self._fd

    @property
    def disk_full(self) -> bool:
        """True from a write the disk refused until ``retry()`` succeeds."""
        return self._disk_full

    def write(self, data: bytes) -> bool:
        """Append ``data`` (a chunk read from the pipe, any length, lines
        split anywhere). False: the disk is full; the bytes are kept, stop
        reading the pipe and call ``retry()`` later."""
        if data:
            if self.timestamps:
                data = self._stamp(data)
            else:
                self._at_line_start = data[-1:] == b"\n"
            self._buffer = self._buffer + data if self._buffer else data
        return self._drain()

    def retry(self) -> bool:
        """Write what the disk refused. True once all of it is written."""
        return self._drain()

    def rotate(self) -> None:
        """Rotate now (``daemonkit rotate NAME``), at a line boundary: at
        once if the file ends with a whole line, else right after the line
        it ends in. An empty file is not rotated. If ``path`` no longer
        names the file (logrotate renamed it, in ``create`` mode), it is
        reopened instead: one command serves both ways of rotating."""
        if self._moved():
            self.reopen()
            return
        self._rotate_wanted = True
        self._drain()

    def reopen(self) -> None:
        """Open ``path`` again, creating it: after something else renamed
        the file (logrotate's ``create`` mode, without copytruncate)."""
        self._close_fd()
        if self._open_after_full():
            self._drain()

    def flush(self) -> None:
        """Write the line held back because it has not ended, with a
        newline added: the app exited, or the supervisor stops."""
        if not self._at_line_start:
            self._buffer += b"\n"
            self._at_line_start = True
        self._drain(final=True)

    def close(self) -> None:
        """flush(), then close the file. What a full disk still refuses
        is lost."""
        try:
            self.flush()
        finally:
            self._close_fd()

    # -- writing ---------------------------------------------------------

    def _drain(self, final: bool = False) -> bool:
        """Write the buffer, rotating where needed. False on a full disk."""
        while True:
            if self._fd < 0 and not self._open_after_full():
                return False
            if self._rotate_wanted and not self._open_line:
                self._rotate_wanted = False
                if self._size:
                    self._rotate()
                continue
            buffer = self._buffer
            if not buffer:
                break
            if not self.max_size:
                end = len(buffer)
            else:
                room = self.max_size - self._size
                if room <= 0:
                    self._rotate()
                    continue
                end = buffer.rfind(b"\n", 0, room) + 1  # whole lines that fit
                if not end:
                    # No line of the buffer ends within the room left.
                    fresh = not self._size or self._open_line  # the line starts at this file's start
                    if len(buffer) <= room:
                        if not (fresh or final):
                            break  # hold the unfinished line back
                        end = len(buffer)
                    elif not fresh:
                        self._rotate()  # the line starts in a file of its own
                        continue
                    else:
                        end = room  # longer than max_size: split at the limit, only there
            if not self._put(buffer, end):
                return False
        self._disk_full = False
        return True

    def _put(self, buffer: bytes, end: int) -> bool:
        """Write buffer[:end]; drop what went out from the buffer."""
        try:
            written = os.write(self._fd, memoryview(buffer)[:end])
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            if self._drop_oldest_archive():
                return True  # try again with the space it freed
            self._disk_full = True
            return False
        self._size += written
        self._open_line = buffer[written - 1 : written] != b"\n" if written else self._open_line
        self._buffer = buffer[written:]
        return True

    # -- files -----------------------------------------------------------

    def _open(self) -> None:
        """Open path for appending; create it with mode when missing. As
        root, through directories nobody but root and the app's user
        controls, and never a file another user planted or hard-linked there
        (the rule every file daemonkit opens as root follows: safedir)."""
        from .safedir import open_in_directory, open_trusted_directory

        uid = self.service_uid
        as_root = os.geteuid() == 0
        dir_fd = (
            open_trusted_directory(self.path, service_uid=uid, error=UnsafeFileError) if as_root else None
        )
        try:
            try:
                fd = open_in_directory(
                    dir_fd, self.path, _OPEN | os.O_CREAT | os.O_EXCL, self.mode, service_uid=uid
                )
                created = True
            except DaemonError as exc:
                if not isinstance(exc.__cause__, FileExistsError):
                    raise
                fd = open_in_directory(dir_fd, self.path, _OPEN, service_uid=self.service_uid)
                created = False
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        try:
            st = os.fstat(fd)
            if created:
                os.fchmod(fd, self.mode)  # the umask may be 0 or 077 (RELIABILITY 6)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = st.st_size
        # A file left ending mid-line (a crash) takes our first line as a
        # line of its own: where it goes on is unknown.
        self._open_line = False

    def _open_after_full(self) -> bool:
        """Open path after the inode for it was refused for lack of space."""
        try:
            self._open()
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            if self._drop_oldest_archive():
                return self._open_after_full()
            self._disk_full = True
            return False
        return True

    def _moved(self) -> bool:
        """path names another file than ours, or none."""
        if self._fd < 0:
            return False
        try:
            named = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return True
        ours = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) != (ours.st_dev, ours.st_ino)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _archive(self, number: int) -> str:
        return f"{self.path}.{number}"

    def _rotate(self) -> None:
        """PATH.keep-1 -> PATH.keep (replacing it), ..., PATH -> PATH.1;
        then a new PATH. Without archives, the file is just started anew."""
        newest_gap = 1  # the first missing archive: the ones above it are not renamed
        while newest_gap < self.keep and os.path.lexists(self._archive(newest_gap)):
            newest_gap += 1
        for number in range(newest_gap - 1, 0, -1):
            try:
                os.rename(self._archive(number), self._archive(number + 1))
            except FileNotFoundError:
                pass
        try:
            if self.keep:
                os.rename(self.path, self._archive(1))
            else:
                os.unlink(self.path)
        except FileNotFoundError:
            pass  # moved away by someone else: start it again
        self._close_fd()
        try:
            self._open()
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            self._disk_full = True  # _drain opens it when there is room

    def _drop_oldest_archive(self) -> bool:
        """Delete the oldest archive (the highest number). False if none."""
        for number in range(self.keep, 0, -1):
            try:
                os.unlink(self._archive(number))
            except FileNotFoundError:
                continue
            return True
        return False

    # -- timestamps ------------------------------------------------------

    def _stamp(self, data: bytes) -> bytes:
        """Prefix every line that starts in data with the time it arrived.
        A line that started in an earlier chunk has its stamp already."""
        stamp = self._timestamp()
        stamped = data.replace(b"\n", b"\n" + stamp)
        if self._at_line_start:
            stamped = stamp + stamped
        self._at_line_start = data[-1:] == b"\n"
        if self._at_line_start:
            stamped = stamped[: -len(stamp)]  # belongs to a line not read yet
        return stamped

    def _timestamp(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._stamp_second:  # strftime once a second
            local = time.localtime(second)
            offset = local.tm_gmtoff or 0
            sign = "-" if offset < 0 else "+"
            hours, minutes = divmod(abs(offset) // 60, 60)
            self._stamp_parts = (
                time.strftime("%Y-%m-%dT%H:%M:%S", local),
                f"{sign}{hours:02d}:{minutes:02d} ",
            )
            self._stamp_second = second
        head, tail = self._stamp_parts
        return f"{head}.{int((now - second) * 1000):03d}{tail}".encode()
