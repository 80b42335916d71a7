"""Notifications on the command line (``servicegraph notifications send|status|dead|retry``).

``send`` runs the sender job (``delivery.sender``) in this process: once until nothing is
due, or with ``--loop`` until stopped (SIGTERM or Ctrl-C finish the message on the wire,
give the rest of the batch back and exit 0). A sender killed outright loses nothing: its
claimed messages go out after their lease (``notifications.lease_s``).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from servicegraph.cli.common import JsonOption, err, fail, jsonable, open_services, out, print_json
from servicegraph.cmdb.model import utcnow
from servicegraph.delivery.sender import SendReport

notifications_app = typer.Typer(
    help="Mail and webhook notifications: send the outbox, list and retry dead letters.",
    no_args_is_help=True,
)

NO_CHANNEL = (
    "no notification channel is configured: set notifications.smtp or notifications.webhooks "
    "(SERVICEGRAPH_NOTIFICATIONS__SMTP__HOST=...)"
)


def _said(report: SendReport) -> str:
    parts = [f"{report.sent} sent"]
    if report.failed:
        parts.append(f"{report.failed} to retry")
    if report.dead:
        parts.append(f"{report.dead} dead-lettered")
    if report.released:
        parts.append(f"{report.released} given back")
    return ", ".join(parts)


@notifications_app.command("send")
def send(
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep sending until stopped (SIGTERM, Ctrl-C).")
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.01, help="Seconds between looks at the outbox [notifications.send_interval_s]."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send the notifications that are due."""
    with open_services() as services:
        sender = services.sender
        if sender is None:
            fail(NO_CHANNEL)
        stop = threading.Event()

        def stopping(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {s: signal.signal(s, stopping) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            if loop:
                wait = interval or services.settings.notifications.send_interval_s
                err.print(f"sending notifications every {wait:g} s; stop with Ctrl-C")
                report = sender.loop(stop, wait)
            else:
                report = sender.drain(stop)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
    if as_json:
        print_json(report)
    else:
        out.print(_said(report), highlight=False)


@notifications_app.command("status")
def status(as_json: JsonOption = False) -> None:
    """How many notifications wait, were sent (and not yet pruned), are dead letters."""
    with open_services(read_only=True) as services:
        counts = services.outbox.counts()
    if as_json:
        print_json(counts)
        return
    out.print(
        f"{counts.pending} waiting, {counts.sent} sent, {counts.dead} dead letters",
        highlight=False,
    )


@notifications_app.command("dead")
def dead(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most to list.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The dead letters, the most recent first: what could not be sent, and why."""
    with open_services(read_only=True) as services:
        letters = services.outbox.dead_letters(limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": e.id,
                    "key": e.message.key,
                    "event": e.message.event,
                    "ticket_id": e.message.ticket_id,
                    "channel": e.message.channel,
                    "target": e.message.target,
                    "subject": e.message.subject,
                    "attempts": e.attempts,
                    "created_at": jsonable(e.message.created_at),
                    "dead_at": jsonable(e.dead_at),
                    "last_error": e.last_error,
                }
                for e in letters
            ]
        )
        return
    if not letters:
        out.print("no dead letters")
        return
    for e in letters:  # one line each: the errors are long, a table would wrap them
        since = e.dead_at.isoformat(timespec="seconds") if e.dead_at else "?"
        out.print(
            f"{e.id}  {e.message.event} of {e.message.ticket_id or '-'} to "
            f"{e.message.channel.value}:{e.message.target}: {e.attempts} attempt(s), dead "
            f"since {since}: {e.last_error or 'no error recorded'}",
            highlight=False,
            soft_wrap=True,
        )


@notifications_app.command("retry")
def retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letters' ids (see `dead`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead letters again: they are due now, with a fresh attempt count."""
    if bool(ids) == all_:
        fail("name dead letters by id, or give --all (not both)", code=2)
    with open_services() as services:
        if ids:
            found = services.outbox.get(ids)
            unknown = [i for i in ids if i not in found or found[i].dead_at is None]
            if unknown:
                fail(f"not dead letters: {', '.join(str(i) for i in unknown)} (see `dead`)")
        count = services.outbox.retry(None if all_ else ids, utcnow())
    if as_json:
        print_json({"retried": count})
    else:
        out.print(f"{count} dead letter(s) due again", highlight=False)
