"""What the desk's commands (``ticket``, ``problem``, ``change``) share: the ``--as`` option,
the services opened with you (or ``--as``) as the actor, and the desk's refusals printed
as one line naming the option at fault (``--planned-end: must be after planned_start``),
or as JSON with ``--json``; exit 1, nothing written.

Each command line names the domain's fields its own way (``ci_ids`` is ``--ci``, a
lifecycle ``transition`` is the STEP argument): a ``DeskErrors`` holds that map.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, NoReturn

import typer

from servicegraph.bootstrap import Services
from servicegraph.cli.common import EXIT_ERROR, fail, open_services, print_json
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import CmdbError, ValidationErrors, ValidationFailed
from servicegraph.ticketing.errors import (
    ApprovalRefused,
    InvalidState,
    InvalidTransition,
    TicketNotFound,
)

ActorOption = Annotated[
    str | None,
    typer.Option("--as", help="Act as this agent (a login) [default: your login]."),
]


class DeskErrors:
    """The refusals of one command line, with its names for the domain's fields."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self.options = dict(options)

    def option_of(self, field: str | None) -> str:
        """The argument or option a domain field path (``ci_ids.1``) was given with; a
        field not in the map is ``--field-name``."""
        if not field:
            return "input"
        head, dot, rest = field.partition(".")
        option = self.options.get(head, "--" + head.replace("_", "-"))
        return f"{option} {rest}" if dot else option

    def refuse(self, exc: CmdbError, as_json: bool, actor: str) -> NoReturn:
        """One line per refused field (``--option: reason``), or JSON; exit 1. ``actor``
        is who acted (``--as``): a CAB refusal names it."""
        if isinstance(exc, ValidationErrors):
            problems = [(e.field, e.reason) for e in exc.errors]
        elif isinstance(exc, ValidationFailed):
            problems = [(exc.field, exc.reason)]
        elif isinstance(exc, TicketNotFound):
            problems = [(exc.field, str(exc))]
        elif isinstance(exc, InvalidState):
            if as_json:
                print_json(
                    {
                        "error": str(exc),
                        "status": exc.current,
                        "step": exc.requested,
                        "allowed": list(exc.allowed),
                    }
                )
            fail(str(exc))
        elif isinstance(exc, ApprovalRefused):  # who may not decide: the --as at fault
            message = f"--as {actor}: {exc.reason}"
            if as_json:
                print_json({"error": message, "option": "--as"})
            fail(message)
        elif isinstance(exc, InvalidTransition):  # conflicts not overridden, open tasks ...
            if as_json:
                print_json({"error": str(exc), "ticket": exc.ticket_id})
            fail(str(exc))
        else:
            fail(str(exc))
        if as_json:
            print_json(
                {
                    "errors": [
                        {"field": f, "option": self.option_of(f), "message": m} for f, m in problems
                    ]
                }
            )
        fail("; ".join(f"{self.option_of(f)}: {m}" for f, m in problems), EXIT_ERROR)

    @contextmanager
    def desk(
        self, actor: str | None, as_json: bool, *, read_only: bool = False
    ) -> Iterator[Services]:
        """The services, with ``actor`` (or the user's login) as the actor of every
        change, and the desk's refusals printed as ``refuse`` does."""
        login = actor or getpass.getuser()
        with open_services(read_only=read_only) as services, change_context(actor=login):
            try:
                yield services
            except CmdbError as exc:
                self.refuse(exc, as_json, login)
