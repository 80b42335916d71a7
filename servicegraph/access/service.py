"""API tokens: created with a role, shown once, stored as a hash, revocable.

A token reads ``sgt_<id>_<secret>``: the id finds the stored record, and the SHA-256 of
the secret is compared in constant time with the stored one. The secret is 256 random
bits, so a plain hash is enough (no password stretching is needed for random secrets).

A token may belong to a holder: an agent of the desk (their login, which must be an
active agent when the token is made) or an integration (``integration:<name>``). The
holder is the actor of everything done with the token, so that the history says "alice",
not "alice-laptop-token". A token held by an agent stops working when the agent is
deactivated (and works again if they come back): leaving the desk revokes nothing by
hand, and a token can never act for someone who is gone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

from servicegraph.access.model import INTEGRATION_PREFIX, ApiToken, Principal, Role, holder_agent
from servicegraph.access.ports import AgentRoster, TokenStore
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.model import utcnow

PREFIX = "sgt_"
_ID_LENGTH = 12
_TOKEN = re.compile(rf"^{PREFIX}([0-9a-f]{{{_ID_LENGTH}}})_([A-Za-z0-9_-]{{20,200}})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UnknownToken(ValidationFailed):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no API token with id or name '{ref}'", field="token")


class TokenService:
    def __init__(
        self,
        store: TokenStore,
        *,
        agents: AgentRoster | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.agents = agents  # None: no directory to check, so no token can name an agent
        self.clock = clock

    def create(
        self, name: str, role: Role | str, *, created_by: str, holder: str | None = None
    ) -> tuple[ApiToken, str]:
        """A new token and its secret, which is shown this once and never stored.
        ``holder``: an active agent's login, or ``integration:<name>``."""
        if not _NAME.match(name):
            raise ValidationFailed(
                "use 1-100 letters, digits and . _ @ - (starting with a letter or digit)",
                field="name",
            )
        holder = self._check_holder(holder)
        try:
            role = Role(role)
        except ValueError:
            raise ValidationFailed(
                f"unknown role '{role}'; roles: {', '.join(r.value for r in Role)}",
                field="role",
            ) from None
        token_id = secrets.token_hex(_ID_LENGTH // 2)
        secret = secrets.token_urlsafe(32)
        token = ApiToken(
            id=token_id,
            name=name,
            role=role,
            secret_sha256=_digest(secret),
            created_at=self.clock(),
            created_by=created_by,
            holder=holder,
        )
        self.store.add_token(token)
        return token, f"{PREFIX}{token_id}_{secret}"

    def _check_holder(self, holder: str | None) -> str | None:
        if holder is None or not holder.strip():
            return None
        holder = holder.strip()
        if holder.startswith(INTEGRATION_PREFIX):
            if not _NAME.match(holder.removeprefix(INTEGRATION_PREFIX)):
                raise ValidationFailed(
                    f"name the integration after '{INTEGRATION_PREFIX}': 1-100 letters, "
                    "digits and . _ @ -",
                    field="holder",
                )
            return holder
        active = self.agents.agent_active(holder) if self.agents is not None else None
        if active is None:
            raise ValidationFailed(
                f"no agent with login '{holder}' (for a system, use '{INTEGRATION_PREFIX}<name>')",
                field="holder",
            )
        if not active:
            raise ValidationFailed(f"agent '{holder}' is inactive", field="holder")
        return holder

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of an active token, or None for anything else."""
        match = _TOKEN.match(presented.strip())
        if match is None:
            return None
        token_id, secret = match.groups()
        token = self.store.get_token(token_id)
        if token is None or not token.active:
            # compare anyway, so that unknown and known ids take the same time
            hmac.compare_digest(_digest(secret), "0" * 64)
            return None
        if not hmac.compare_digest(_digest(secret), token.secret_sha256):
            return None
        agent = holder_agent(token.holder)
        if agent is not None and (self.agents is None or not self.agents.agent_active(agent)):
            return None  # the agent left (or cannot be checked): the token acts for nobody
        return Principal(name=token.name, role=token.role, token_id=token.id, holder=token.holder)

    def all(self) -> list[ApiToken]:
        return self.store.list_tokens()

    def find(self, ref: str) -> ApiToken:
        token = self.store.get_token(ref) or self.store.token_named(ref)
        if token is None:
            raise UnknownToken(ref)
        return token

    def revoke(self, ref: str) -> ApiToken:
        """Revoke by id or name; revoking a revoked token changes nothing."""
        token = self.find(ref)
        self.store.revoke_token(token.id, self.clock())
        return self.find(token.id)


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization`` value: ``Bearer <token>``, or the bare token."""
    if value is None or not value.strip():
        return None
    scheme, _, token = value.strip().partition(" ")
    if token and scheme.lower() == "bearer":
        return token.strip()
    return value.strip() if not token else None
