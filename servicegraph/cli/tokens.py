"""API tokens on the command line (``servicegraph token create|list|revoke``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from servicegraph.access.model import Role
from servicegraph.cli.common import JsonOption, err, open_services, out, print_json

ROLES = ", ".join(r.value for r in Role)

token_app = typer.Typer(
    help=f"API tokens for /graphql and the webhooks: roles {ROLES}.",
    no_args_is_help=True,
)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help=f"One of {ROLES}.")],
    name: Annotated[str, typer.Option(help="Which token it is; the actor when it has no holder.")],
    holder: Annotated[
        str | None,
        typer.Option(
            help="Whom it belongs to, recorded as the actor of what it does: an active agent's "
            "login (the token stops working while the agent is inactive), or "
            "integration:<name> for a system.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, this once (only a hash is stored)."""
    import getpass

    with open_services() as services:
        token, secret = services.tokens.create(
            name, role, created_by=getpass.getuser(), holder=holder
        )
    if as_json:
        print_json(
            {
                "id": token.id,
                "name": token.name,
                "role": token.role,
                "holder": token.holder,
                "token": secret,
            }
        )
        return
    out.print(secret, highlight=False, soft_wrap=True)
    held = f", held by {token.holder}" if token.holder else ""
    err.print(
        f"token '{token.name}' ({token.role}{held}, id {token.id}) created; the secret above is "
        "shown only now: keep it safe",
        highlight=False,
    )


@token_app.command("list")
def token_list(as_json: JsonOption = False) -> None:
    """Every token with its role and state (never the secret)."""
    with open_services(read_only=True) as services:
        tokens = services.tokens.all()
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "role": t.role.value,
            "holder": t.holder,
            "created_at": t.created_at,
            "created_by": t.created_by,
            "revoked_at": t.revoked_at,
        }
        for t in tokens
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "role", "holder", "created", "by", "state")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        table.add_row(
            t.id,
            t.name,
            t.role.value,
            t.holder or "",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            t.created_by,
            state,
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token: Annotated[str, typer.Argument(help="The token's id or name.")]) -> None:
    """Revoke a token: it stops working at once."""
    with open_services() as services:
        revoked = services.tokens.revoke(token)
    err.print(f"token '{revoked.name}' ({revoked.id}) revoked", highlight=False)
