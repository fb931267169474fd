"""Changing user and group, chroot and core dumps.

Names are resolved in the launcher, before any chroot hides /etc/passwd,
so that an unknown user is an immediate error in the terminal. The drop
itself follows CERT POS36-C: supplementary groups, then the gid, then the
uid, and then a check that root cannot be regained.
"""

from __future__ import annotations

import os

from .errors import DaemonError

TYPE_CHECKING = False  # see __init__.py
if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from typing import Union

    UserSpec = Union[str, int, None]


class Credentials:
    """Numeric ids to switch to, resolved in the launcher."""

    __slots__ = ("uid", "gid", "groups")

    def __init__(self, uid: int, gid: int, groups: list[int]) -> None:
        self.uid, self.gid, self.groups = uid, gid, groups


def resolve(user: UserSpec, group: UserSpec, initgroups: bool = True) -> Credentials | None:
    """Turn user/group names or ids into ids; None when neither is given.

    With ``initgroups`` the supplementary groups are the user's (from the
    group database); without, only the primary group: never the launcher's.
    """
    if user is None and group is None:
        return None
    import grp
    import pwd

    uid, gid, name = os.getuid(), os.getgid(), None
    if user is not None:
        try:
            pw = pwd.getpwnam(user) if isinstance(user, str) else pwd.getpwuid(user)
        except KeyError:
            if isinstance(user, str):
                raise DaemonError(f"unknown user {user!r}") from None
            pw = None  # a bare uid without a passwd entry is allowed
        uid = pw.pw_uid if pw else int(user)
        gid = pw.pw_gid if pw else gid
        name = pw.pw_name if pw else None
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid if isinstance(group, str) else grp.getgrgid(group).gr_gid
        except KeyError:
            if isinstance(group, str):
                raise DaemonError(f"unknown group {group!r}") from None
            gid = int(group)
    # initgroups(3): the user's supplementary groups, read now, before chroot.
    groups = os.getgrouplist(name, gid) if name and initgroups else []
    return Credentials(uid, gid, groups)


#: What systemd's User= sets from the password database (systemd.exec(5)).
USER_VARIABLES = ("HOME", "USER", "LOGNAME", "SHELL")


def user_environment(uid: int) -> dict[str, str]:
    """HOME, USER, LOGNAME and SHELL of ``uid`` from the password database,
    as systemd's User= and login(1) set them; empty for a uid without an
    entry. Without this a daemon started by root with ``--user`` would look
    for its files in /root (issue 9, item 15)."""
    import pwd

    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return {}
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name, "SHELL": pw.pw_shell or "/bin/sh"}


def apply_user_environment(
    environ: MutableMapping[str, str] | None, user: UserSpec, creds: Credentials | None, inherited: bool
) -> None:
    """Give a command started with ``user`` that user's :func:`user_environment`.

    Over an ``inherited`` environment (the caller's) the user's values
    win; in one given explicitly, what it already says is kept.
    """
    if environ is None or user is None or creds is None:
        return
    for name, value in user_environment(creds.uid).items():
        if inherited or name not in environ:
            environ[name] = value


def drop(creds: Credentials) -> None:
    """Step 9: setgroups, setgid, setuid, then verify root is gone for good."""
    if (os.geteuid(), os.getegid()) == (creds.uid, creds.gid) and os.getuid() == creds.uid:
        return
    try:
        if os.geteuid() == 0:
            os.setgroups(creds.groups)
        os.setgid(creds.gid)
        os.setuid(creds.uid)
    except PermissionError as exc:
        raise DaemonError(
            f"cannot switch to uid {creds.uid} gid {creds.gid}: {exc.strerror} (only root can)"
        ) from exc
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (creds.uid, creds.uid, creds.gid, creds.gid):
        raise DaemonError("privilege drop did not take effect")
    if creds.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise DaemonError("privilege drop failed: root could be regained")


def prevent_core_dumps() -> None:
    """A core dump of a daemon can hold secrets read while privileged."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def chroot(directory: str) -> None:
    try:
        os.chroot(directory)
    except OSError as exc:
        raise DaemonError(f"cannot chroot to {directory}: {exc.strerror}") from exc
