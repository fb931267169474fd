"""Reading a daemon's log: the last lines across the archives, and
following the file across rotations (``daemonkit logs NAME [-n N] [-f]``).

The log is ``PATH`` plus the archives ``PATH.1`` (the newest) to ``PATH.k``
that rotation by rename leaves (daemonkit's own, or logrotate's ``create``
mode). Nothing here needs the daemon to run.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from collections.abc import Iterator

_BLOCK = 64 * 1024
_MAX_ARCHIVES = 1000  # how far the archives are looked for
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def tail(path: str, n: int = 10) -> list[bytes]:
    """The last ``n`` lines of ``path`` and its archives, oldest first,
    without their newlines. The end of a file ends a line. Missing files
    are skipped: no file at all gives []."""
    try:
        fd = os.open(path, _OPEN)
    except FileNotFoundError:
        return _tail_of_archives(path, -1, [], n)
    try:
        _check_regular(fd, path)
        return tail_before(path, fd, os.fstat(fd).st_size, n)
    finally:
        os.close(fd)


def follow(path: str, n: int = 10, *, interval: float = 0.1) -> Iterator[bytes]:
    """The last ``n`` lines (as one chunk, newlines included), then every
    byte written to ``path`` from then on, as it comes, until the caller
    stops iterating (Ctrl-C).

    The file is followed across rotations: when ``path`` names another
    file, the one being read is read to its end, then its successor (the
    next newer archive, or the new ``path``) takes over, once something
    has been written to it. A writer that keeps the renamed file open (the
    time between logrotate's ``mv`` and the writer's reopen) is thus still
    read from, and nothing is read twice. A file truncated in place
    (copytruncate) is read again from its start. Polls every ``interval``
    seconds. Like any generator, it opens the file and takes the last
    lines at the first ``next()``, not when called."""
    current = _open_when_there(path, interval)
    try:
        size = os.fstat(current).st_size
        start = _start_of_last_line(current, size)
        head = tail_before(path, current, start, n)
        if head:
            yield b"".join(line + b"\n" for line in head)
        position = start
        while True:
            chunk = os.pread(current, _BLOCK, position)
            if chunk:
                position += len(chunk)
                yield chunk
                continue
            if os.fstat(current).st_size < position:
                position = 0  # truncated in place: start again
                continue
            successor = _successor(path, current)
            if successor is None:
                time.sleep(interval)
                continue
            # Whatever was written to the old file before the new one got
            # its first byte is there now: read it, then move on.
            chunk = os.pread(current, _BLOCK, position)
            if chunk:
                os.close(successor)
                position += len(chunk)
                yield chunk
                continue
            os.close(current)
            current, position = successor, 0
    finally:
        os.close(current)


def tail_before(path: str, fd: int, end: int, n: int) -> list[bytes]:
    """The last ``n`` lines before offset ``end`` of the open file ``fd``
    (which ``path`` names), and before them the archives' last lines."""
    return _tail_of_archives(path, fd, _last_lines(fd, end, n), n)


def _tail_of_archives(path: str, fd: int, lines: list[bytes], n: int) -> list[bytes]:
    """lines, preceded by the last lines of path.1, path.2, ... (skipping
    the file fd already read) until there are n."""
    for name in _newest_first(path)[1:]:
        if len(lines) >= n:
            break
        try:
            archive = os.open(name, _OPEN)
        except FileNotFoundError:
            continue
        try:
            _check_regular(archive, name)
            if fd < 0 or not os.path.sameopenfile(archive, fd):
                lines[:0] = _last_lines(archive, os.fstat(archive).st_size, n - len(lines))
        finally:
            os.close(archive)
    return lines[-n:] if n > 0 else []


def _newest_first(path: str) -> list[str]:
    """path, then the archives that exist: path.1, path.2, ..."""
    return [path] + [name for name, st in list(_sequence(path))[1:] if st is not None]


def _sequence(path: str) -> Iterator[tuple[str, os.stat_result | None]]:
    """(name, lstat, None if missing) for path, path.1, path.2, ..., up to
    two archive numbers missing in a row.

    One missing number is a rotation under way, not the end: the writer
    renames the oldest first (path.j to path.j+1, then path.j-1 to
    path.j), so for a moment one number in the middle is free. Each name
    is looked at when it is reached, so a file moved up to the next number
    while we look is still met."""
    missing = 0
    for number in range(_MAX_ARCHIVES + 1):
        name = _archive(path, number)
        try:
            st: os.stat_result | None = os.stat(name, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if number and st is None:
            missing += 1
            if missing == 2:
                return
        else:
            missing = 0
        yield name, st


def _archive(path: str, number: int) -> str:
    return f"{path}.{number}" if number else path


def _check_regular(fd: int, name: str) -> None:
    if (os.fstat(fd).st_mode & 0o170000) != 0o100000:
        raise OSError(22, "not a regular file", name)


def _last_lines(fd: int, end: int, n: int) -> list[bytes]:
    """The last n lines of fd before offset end, reading backwards."""
    if n <= 0 or end <= 0:
        return []
    data = b""
    start = end
    while start > 0:
        step = min(_BLOCK, start)
        start -= step
        data = os.pread(fd, step, start) + data
        # n newlines inside the text (the one that ends it does not count)
        if data.count(b"\n", 0, len(data) - 1) >= n:
            break
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the text ended with a newline
    if start > 0:
        lines = lines[1:]  # the first one may be cut
    return lines[-n:]


def _start_of_last_line(fd: int, size: int) -> int:
    """The offset after the last newline before size (0 if none): an
    unfinished line is followed, not shown as a whole line by the tail."""
    position = size
    while position > 0:
        step = min(_BLOCK, position)
        block = os.pread(fd, step, position - step)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return position - step + newline + 1
        position -= step
    return 0


def _open_when_there(path: str, interval: float) -> int:
    while True:
        try:
            fd = os.open(path, _OPEN)
        except FileNotFoundError:
            time.sleep(interval)
            continue
        try:
            _check_regular(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _successor(path: str, current: int) -> int | None:
    """An fd to the file written after ``current``, if ``path`` no longer
    names current and that file has data; else None.

    The successor of ``path.j`` is ``path.j-1`` (``path`` for ``path.1``).
    The names shift at every rotation, so after opening the successor the
    name ``path.j`` is checked again to still be current; else try again.
    A current file that was deleted (it fell off the oldest end while we
    were behind) is succeeded by the oldest archive; one renamed to a name
    not in the sequence (dateext) by ``path``. Current is looked for past
    the number a rotation under way leaves free (see _sequence): a
    follower several archives behind must not take that for a rename out
    of the sequence and skip ahead to ``path``, losing the archives
    between."""
    here = os.fstat(current)
    while True:
        where, oldest = None, path
        for number, (name, st) in enumerate(_sequence(path)):
            if st is None:
                continue
            if (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):
                where = number
                break
            oldest = name
        if where == 0:
            return None  # still the live file
        if where is not None:
            candidate = _archive(path, where - 1)
        elif here.st_nlink == 0:
            candidate = oldest  # it fell off the oldest end
        else:
            candidate = path  # renamed out of the sequence (dateext)
        try:
            fd = os.open(candidate, _OPEN)
        except FileNotFoundError:
            return None  # between two renames of a rotation, or before the new file: at the next poll
        try:
            st = os.fstat(fd)
            if where is not None:
                now = os.stat(_archive(path, where), follow_symlinks=False)
                if (now.st_dev, now.st_ino) != (here.st_dev, here.st_ino):
                    os.close(fd)
                    continue  # rotated meanwhile: look again
        except FileNotFoundError:
            os.close(fd)
            continue
        if (st.st_mode & 0o170000) != 0o100000 or (st.st_size == 0 and candidate == path):
            os.close(fd)
            return None  # the new file has nothing yet: the old one may still be written to
        return fd
