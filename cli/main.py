"""The ``snnas`` application: one command per module, registered here."""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings

import typer

from snnas.cli import arch, dashboard, energy, profiles, report, search, space, train, zoo
from snnas.cli.common import DEBUG_ENV, debug_enabled, report_error

app = typer.Typer(
    name="snnas",
    help="Hardware-aware architecture search and energy estimation for spiking vision transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from snnas.nas import __version__

        print(f"snnas {__version__}")
        raise typer.Exit()


def _debug(value: bool) -> None:
    if value:
        os.environ[DEBUG_ENV] = "1"
        warnings.resetwarnings()  # --debug shows the libraries' warnings too


def _quiet_libraries() -> None:
    """The libraries' deprecation and tracing warnings are not the user's business: snnas says
    what matters in its own words (--debug shows them)."""
    if not debug_enabled():
        warnings.simplefilter("ignore")
        logging.getLogger("torch._library.triton").setLevel(logging.ERROR)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", callback=_debug, is_eager=True, help="Show tracebacks on errors."),
) -> None:
    """snnas: search spiking transformers for accuracy per joule, and price any spiking model's energy."""


def _help(command) -> str:
    """A command's docstring as help text: its paragraphs each joined into one line, so that the
    terminal wraps them (the docstring's own line breaks would show as hard breaks in --help)."""
    text = inspect.cleandoc(command.__doc__ or "")
    return "\n\n".join(" ".join(line.strip() for line in block.splitlines()) for block in text.split("\n\n"))


for _name, _command in (("search", search.search), ("train", train.train), ("evaluate", train.evaluate),
                        ("report", report.report), ("arch", arch.app), ("dashboard", dashboard.dashboard),
                        ("space", space.app), ("zoo", zoo.zoo), ("energy", energy.energy),
                        ("profiles", profiles.profiles)):
    if isinstance(_command, typer.Typer):  # a group: its sub-commands' help the same way
        for _info in _command.registered_commands:
            _info.help = _info.help or _help(_info.callback)
        app.add_typer(_command, name=_name)
    else:
        app.command(_name, help=_help(_command))(_command)


def main() -> None:
    _quiet_libraries()
    try:
        code = app(standalone_mode=False)  # usage errors come back here and are told in one line
    except typer.Abort:
        print("snnas: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors: a bad flag or value, in one line
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())  # `snnas` or `snnas arch` alone: the help, as before
            sys.exit(2)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        print(f"snnas: error: {where}{exc.format_message()}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print("snnas: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # one clear line, no traceback, unless debugging
        if debug_enabled():
            raise
        sys.exit(report_error(exc))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
