"""The command line, described once as a table and read by argparse.

Only the parser of the subcommand given is built (the others are listed
for ``--help``, without their options): building them all costs more than
reading the command line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .common import UsageError

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Callable

# What a command takes besides options: nothing, an optional NAME, NAME.
NO_NAME, OPTIONAL_NAME, NAME = 0, 1, 2


class Option:
    """``--flag VALUE`` (or ``--flag=VALUE``), or a bare ``--flag`` when
    ``metavar`` is None. ``convert`` turns the text into the value and
    raises UsageError or ValueError for bad text."""

    def __init__(
        self,
        flag: str,
        help: str = "",
        *,
        metavar: str | None = "",
        default: Any = None,
        convert: Callable[[str], Any] | None = None,
        repeat: bool = False,
        choices: Sequence[str] | None = None,
    ) -> None:
        self.flag, self.help, self.default, self.convert, self.repeat = flag, help, default, convert, repeat
        self.choices = choices
        self.dest = flag.removeprefix("--").replace("-", "_")
        self.metavar = self.dest.upper() if metavar == "" else metavar


class Command:
    """A subcommand: its options, whether it takes NAME, and whether it
    takes ``-- COMMAND [ARGS...]``."""

    def __init__(
        self,
        name: str,
        help: str,
        func: Callable[[argparse.Namespace], int],
        options: Sequence[Option] = (),
        *,
        takes_name: int = NO_NAME,
        takes_command: bool = False,
    ) -> None:
        self.name, self.help, self.func, self.options = name, help, func, tuple(options)
        self.takes_name, self.takes_command = takes_name, takes_command


class _Parser(argparse.ArgumentParser):
    """argparse, with a suggestion for a mistyped option."""

    known: Sequence[str] = ()

    def error(self, message: str) -> Any:
        if "unrecognized arguments:" in message:
            import difflib

            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], self.known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
                    break
        super().error(message)


class Program:
    """The whole command line: ``name COMMAND [options] [NAME] [-- ...]``."""

    def __init__(self, name: str, description: str, version: str, commands: Sequence[Command]) -> None:
        self.name, self.description, self.version = name, description, version
        self.commands = {command.name: command for command in commands}

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """The command line as a Namespace with ``func``; argparse prints
        help or the mistake and exits with status 2."""
        argv, command = _split_command(argv)
        wanted = argv[0] if argv and argv[0] in self.commands else None
        parser = self.parser(wanted)
        namespace = parser.parse_args(argv)
        spec = self.commands[namespace.action]
        if command is not None:
            if not spec.takes_command or namespace.command:
                parser.error("unexpected arguments before or after --")
            namespace.command = command
        return namespace

    def print_usage(self, command: str | None = None) -> None:
        self.parser(command).print_usage(sys.stderr)

    def parser(self, wanted: str | None) -> argparse.ArgumentParser:
        """The parser, with the options of ``wanted`` (every command's if None)."""
        parser = _Parser(prog=self.name, description=self.description, formatter_class=_Formatter)
        parser.add_argument("--version", action="version", version=self.version)
        sub = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)
        for spec in self.commands.values():
            p = sub.add_parser(spec.name, help=spec.help, formatter_class=_Formatter)
            if wanted is None or spec.name == wanted:
                _add_arguments(p, spec)
                parser.known = [*parser.known, *(option.flag for option in spec.options)]
        return parser


def _add_arguments(parser: argparse.ArgumentParser, spec: Command) -> None:
    assert isinstance(parser, _Parser)
    parser.known = [option.flag for option in spec.options]
    if spec.takes_name != NO_NAME:
        optional = spec.takes_name == OPTIONAL_NAME
        parser.add_argument("name", nargs="?" if optional else None, metavar="NAME")
    for option in spec.options:
        if option.metavar is None:
            parser.add_argument(option.flag, action="store_true", help=option.help)
            continue
        parser.add_argument(
            option.flag,
            metavar=option.metavar,
            default=[] if option.repeat else option.default,
            action="append" if option.repeat else "store",
            type=_for_argparse(option.convert) if option.convert else str,
            choices=option.choices,
            help=option.help,
        )
    if spec.takes_command:
        # Without "--", start and run take the rest as the command.
        nargs = argparse.REMAINDER if spec.takes_name == NO_NAME else "*"
        parser.add_argument("command", nargs=nargs, help="-- COMMAND [ARGS...]")
    parser.set_defaults(func=spec.func)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns
        except (OSError, ValueError):
            columns = 80
        super().__init__(prog, width=columns - 2)


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Everything after the first "--" is the command, untouched: argparse's
    own handling of "--" after a subcommand's positionals is unreliable."""
    argv = list(argv)
    if "--" not in argv:
        return argv, None
    split = argv.index("--")
    return argv[:split], argv[split + 1 :]


def _for_argparse(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse shows the message of an ArgumentTypeError, not of ours."""

    def converted(text: str) -> Any:
        try:
            return convert(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    converted.__name__ = convert.__name__  # argparse names the type in its message
    return converted


_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def duration(text: str) -> float:
    """A duration: plain seconds, or with a unit: 100ms, 2s, 5m, 1h; finite
    and not negative (0 means "at once" or "off", as the option says)."""
    value, scale = text.strip(), 1.0
    for suffix, factor in _UNITS:
        if value.endswith(suffix) and value[: -len(suffix)].replace(".", "", 1).isdigit():
            value, scale = value[: -len(suffix)], factor
            break
    try:
        number = float(value) * scale
    except ValueError:
        raise UsageError(f"invalid duration {text!r}: use seconds, such as 10, 1.5 or 100ms") from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"invalid duration {text!r}: use a finite number of seconds, such as 10 or 100ms")
    return number


def seconds(text: str) -> float:
    """A duration greater than zero (a timeout)."""
    number = duration(text)
    if number <= 0:
        raise UsageError(f"invalid duration {text!r}: use a finite number of seconds greater than 0")
    return number


def size(text: str) -> int:
    """A size in bytes: 10M, 512K, 1G or plain bytes; 0 or more."""
    digits = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(digits[-1:], 1)
    try:
        value = int(float(digits[:-1] if scale > 1 else digits) * scale)
    except (ValueError, OverflowError):
        value = -1
    if value < 0:
        raise UsageError(f"invalid size {text!r}: use 10M, 512K or bytes")
    return value


def wait_ready(text: str) -> str:
    """A readiness mode (daemonkit.readiness), checked before anything starts."""
    from daemonkit.errors import DaemonError
    from daemonkit.readiness import WaitReady

    try:
        WaitReady(text)
    except DaemonError as exc:
        raise UsageError(str(exc)) from None
    return text


def count(text: str) -> int:
    """A whole number, 0 or more."""
    if not text.strip().isdigit():
        raise UsageError(f"invalid number {text!r}: use a whole number, 0 or more")
    return int(text)
