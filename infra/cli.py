"""The `rexbert` command: one Typer app, one subcommand group per platform concern.

Each group lives in `infra/commands/<name>.py` and exposes `register(app)`; commands stay thin and
call one job function. Every expected failure (bad config, input or output; see `infra.commands.errors`)
ends as one line on stderr and exit code 2; `rexbert --debug ...` prints its traceback too. Unexpected
errors keep their traceback.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from infra.commands.errors import problem_of
from infra.core.config import redact


class _OneLineErrors(TyperGroup):
    """The root group: a command's expected failure becomes `error: <one line>` and exit code 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as err:
            problem = None if _is_click_control(err) else problem_of(err)
            if problem is None:
                raise
            if ctx.params.get("debug"):
                traceback.print_exception(err)
            typer.echo(f"error: {redact(problem)}", err=True)  # a `--x.password=...` it quotes is not printed
            raise typer.Exit(2) from None


def _is_click_control(err: BaseException) -> bool:
    """Usage errors and exits of click/typer: they already print their own message and choose the exit code."""
    from typer.exceptions import TyperException

    return isinstance(err, TyperException | typer.Exit | typer.Abort)


app = typer.Typer(
    name="rexbert",
    cls=_OneLineErrors,
    help="Build e-commerce encoders end to end: curate (Spark), tokenize (Ray Data), pretrain (Ray Train), "
    "evaluate (Ray Tune).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Print the traceback of a failure, not one line.")) -> None:
    """Options of every command (given before it: `rexbert --debug corpus extract ...`)."""


# Order here is the order of `rexbert --help`: the pipeline first, operations after.
COMMAND_MODULES = [
    "demo",
    "sample_data",
    "corpus",
    "tokenize",
    "pretrain",
    "evaluate",
    "study",
    "report",
    "submit",
    "jobs",
    "dashboard",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"infra.commands.{_name}").register(app)


def main() -> None:
    """Console entry point (`rexbert`). SIGTERM stops a command as Ctrl-C does: its temporaries are removed."""
    from infra.core.outputs import handle_sigterm

    handle_sigterm()
    app()


if __name__ == "__main__":
    main()
