"""The storage port of API tokens. Adapters raise ``StoreUnavailable`` / ``StoreError``."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from servicegraph.access.model import ApiToken


class TokenStore(Protocol):
    def add_token(self, token: ApiToken) -> None:
        """Store a new token; a name already used raises ``ValidationFailed`` (field
        ``name``)."""

    def get_token(self, token_id: str) -> ApiToken | None: ...

    def token_named(self, name: str) -> ApiToken | None: ...

    def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones included, oldest first."""

    def revoke_token(self, token_id: str, at: dt.datetime) -> bool:
        """Revoke an active token; False when it was revoked already."""


class AgentRoster(Protocol):
    """Who the desk's agents are, for tokens held by an agent (the desk's directory,
    ``servicegraph.ticketing.desk_directory.DeskDirectory``, wired by ``bootstrap``)."""

    def agent_active(self, login: str) -> bool | None:
        """True for an active agent, False for one who left, None for no such agent."""
