"""API tokens on the command line (``servicegraph token create|list|revoke``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from servicegraph.cli.common import JsonOption, err, open_services, out, print_json

token_app = typer.Typer(
    help="API tokens for /graphql and the webhooks: roles viewer, engineer, problem_manager, "
    "admin, integration.",
    no_args_is_help=True,
)


@token_app.command("create")
def token_create(
    role: Annotated[
        str,
        typer.Option(help="viewer, engineer, problem_manager, admin or integration."),
    ],
    name: Annotated[str, typer.Option(help="Who or what uses it; recorded as the actor.")],
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, this once (only a hash is stored)."""
    import getpass

    with open_services() as services:
        token, secret = services.tokens.create(name, role, created_by=getpass.getuser())
    if as_json:
        print_json({"id": token.id, "name": token.name, "role": token.role, "token": secret})
        return
    out.print(secret, highlight=False, soft_wrap=True)
    err.print(
        f"token '{token.name}' ({token.role}, id {token.id}) created; the secret above is shown "
        "only now: keep it safe",
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
            "created_at": t.created_at,
            "created_by": t.created_by,
            "revoked_at": t.revoked_at,
        }
        for t in tokens
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "role", "created", "by", "state")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        table.add_row(
            t.id, t.name, t.role.value, f"{t.created_at:%Y-%m-%d %H:%M}", t.created_by, state
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(token: Annotated[str, typer.Argument(help="The token's id or name.")]) -> None:
    """Revoke a token: it stops working at once."""
    with open_services() as services:
        revoked = services.tokens.revoke(token)
    err.print(f"token '{revoked.name}' ({revoked.id}) revoked", highlight=False)
