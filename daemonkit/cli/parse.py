"""The command line, described once and read two ways.

Every well-formed command line is read by a few lines over one table of
commands and options. argparse reads the same table, but is imported only
for ``--help``, ``--version`` and mistakes, where its messages are wanted:
with the ``re`` and ``enum`` modules it brings, it costs ~8 ms, a third of
what ``daemonkit start`` spends before its command runs.
"""

from __future__ import annotations

import os
import sys

from .common import UsageError

TYPE_CHECKING = False  # see daemonkit/__init__.py
if TYPE_CHECKING:
    import argparse
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
    ) -> None:
        self.flag, self.help, self.default, self.convert, self.repeat = flag, help, default, convert, repeat
        self.dest = flag.removeprefix("--").replace("-", "_")
        self.metavar = self.dest.upper() if metavar == "" else metavar
        if metavar is None:  # a flag: off unless given, as argparse's store_true
            self.default = False


class Command:
    """A subcommand: its options, whether it takes NAME, and whether it
    takes ``-- COMMAND [ARGS...]``."""

    def __init__(
        self,
        name: str,
        help: str,
        func: Callable[[Args], int],
        options: Sequence[Option] = (),
        *,
        takes_name: int = NO_NAME,
        takes_command: bool = False,
    ) -> None:
        self.name, self.help, self.func, self.options = name, help, func, tuple(options)
        self.takes_name, self.takes_command = takes_name, takes_command
        self.by_flag = {option.flag: option for option in self.options}


class Args:
    """The parsed command line: one attribute per option, plus ``func``,
    and ``name`` and ``command`` where the command takes them."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    # For type checkers: the attributes come from the table.
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value


class Program:
    """The whole command line: ``name COMMAND [options] [NAME] [-- ...]``."""

    def __init__(self, name: str, description: str, version: str, commands: Sequence[Command]) -> None:
        self.name, self.description, self.version = name, description, version
        self.commands = {command.name: command for command in commands}

    def parse(self, argv: Sequence[str], *, quick: bool = True) -> Args:
        """The command line as Args. argparse prints help or the mistake and
        exits, or reads what the quick parser leaves to it (``start CMD``
        without ``--``, or ``--time`` for ``--timeout``)."""
        args = self._parse_quickly(argv) if quick else None
        if args is not None:
            return args
        parser = self._argparse_parser()
        argv, command = _split_command(argv)
        namespace = parser.parse_args(argv)
        if command is not None:
            if not hasattr(namespace, "command") or namespace.command:
                parser.error("unexpected arguments before or after --")
            namespace.command = command
        return Args(**vars(namespace))

    def print_usage(self) -> None:
        self._argparse_parser().print_usage(sys.stderr)

    def _parse_quickly(self, argv: Sequence[str]) -> Args | None:
        """None for anything but a plain, valid command line."""
        argv, command = _split_command(argv)
        spec = self.commands.get(argv[0]) if argv else None
        if spec is None:
            return None
        values: dict[str, Any] = {"action": spec.name, "func": spec.func}
        for option in spec.options:
            values[option.dest] = [] if option.repeat else option.default
        names = []
        rest = iter(argv[1:])
        for token in rest:
            if not token.startswith("-"):
                names.append(token)
                continue
            flag, equals, text = token.partition("=")
            found = spec.by_flag.get(flag)
            if found is None or (found.metavar is None and equals):
                return None
            option = found
            if option.metavar is None:
                values[option.dest] = True
                continue
            if not equals:
                text = next(rest, "-")
                if text.startswith("-"):  # a missing value, as argparse sees it
                    return None
            try:
                value = option.convert(text) if option.convert else text
            except (UsageError, ValueError):
                return None
            if option.repeat:
                values[option.dest].append(value)
            else:
                values[option.dest] = value
        if len(names) > (spec.takes_name != NO_NAME) or (spec.takes_name == NAME and not names):
            return None
        if spec.takes_name != NO_NAME:
            values["name"] = names[0] if names else None
        if spec.takes_command:
            values["command"] = command or []
        elif command is not None:
            return None
        return Args(**values)

    def _argparse_parser(self) -> argparse.ArgumentParser:
        import argparse

        class Formatter(argparse.HelpFormatter):
            """argparse's own formatter imports shutil (~4 ms) only to ask
            for the terminal's width; os can answer that."""

            def __init__(self, prog: str) -> None:
                try:
                    columns = os.get_terminal_size(sys.stderr.fileno()).columns
                except (OSError, ValueError):
                    columns = 80
                super().__init__(prog, width=columns - 2)

        parser = argparse.ArgumentParser(
            prog=self.name, description=self.description, formatter_class=Formatter
        )
        parser.add_argument("--version", action="version", version=self.version)
        sub = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)
        for spec in self.commands.values():
            p = sub.add_parser(spec.name, help=spec.help, formatter_class=Formatter)
            if spec.takes_name != NO_NAME:
                optional = spec.takes_name == OPTIONAL_NAME
                p.add_argument("name", nargs="?" if optional else None, metavar="NAME")
            for option in spec.options:
                if option.metavar is None:
                    p.add_argument(option.flag, action="store_true", help=option.help)
                    continue
                p.add_argument(
                    option.flag,
                    metavar=option.metavar,
                    default=[] if option.repeat else option.default,
                    action="append" if option.repeat else "store",
                    type=_for_argparse(option.convert) if option.convert else str,
                    help=option.help,
                )
            if spec.takes_command:
                # Without "--", start and run take the rest as the command.
                nargs = argparse.REMAINDER if spec.takes_name == NO_NAME else "*"
                p.add_argument("command", nargs=nargs, help="-- COMMAND [ARGS...]")
            p.set_defaults(func=spec.func)
        return parser


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
    import argparse

    def converted(text: str) -> Any:
        try:
            return convert(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    converted.__name__ = convert.__name__  # argparse names the type in its message
    return converted
