"""The behaviour every backend of the API token port owes the services, as documented in
``servicegraph.access.ports.TokenStore``.

A backend's test module subclasses ``TokenContract``, sets ``__test__ = True`` and provides
the fixtures: ``tokens``, an empty, migrated store that the fixture closes afterwards;
``other_tokens``, a second store over the same data, as another process opens it; and
``failing_tokens``, a store whose backend fails underneath (a damaged file, a lost server).
A backend that cannot run here is skipped with the reason, never faked.

The suite runs over SQLite (``test_sqlite_tokens.py``) and Neo4j (``test_neo4j_tokens.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from servicegraph.access.model import ApiToken, Role
from servicegraph.access.ports import TokenStore
from servicegraph.cmdb.errors import StoreError, StoreUnavailable, ValidationFailed

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def make_token(token_id: str, *, name: str | None = None, **fields: Any) -> ApiToken:
    return ApiToken(
        id=token_id,
        name=name or f"name-of-{token_id}",
        role=fields.pop("role", Role.VIEWER),
        secret_sha256=fields.pop("secret_sha256", f"sha256-of-{token_id}"),
        created_at=fields.pop("created_at", T0),
        created_by=fields.pop("created_by", "admin"),
        **fields,
    )


class TokenContract:
    """Subclass per backend; override the ``tokens``, ``other_tokens`` and
    ``failing_tokens`` fixtures."""

    __test__ = False

    @pytest.fixture
    def tokens(self) -> TokenStore:
        raise NotImplementedError("a backend's test class provides the tokens fixture")

    @pytest.fixture
    def other_tokens(self, tokens: TokenStore) -> TokenStore:
        raise NotImplementedError("a backend's test class provides the other_tokens fixture")

    @pytest.fixture
    def failing_tokens(self) -> TokenStore:
        raise NotImplementedError("a backend's test class provides the failing_tokens fixture")

    # -- reads ---------------------------------------------------------------------------

    def test_empty_store(self, tokens: TokenStore) -> None:
        assert tokens.list_tokens() == []
        assert tokens.get_token("tok-nope") is None
        assert tokens.token_named("nope") is None

    def test_add_and_get_round_trip_every_field(self, tokens: TokenStore) -> None:
        cet = dt.timezone(dt.timedelta(hours=1))
        token = make_token(
            "tok-a",
            name="monitoring ü prod",  # not ASCII
            role=Role.INTEGRATION,
            secret_sha256="0" * 64,
            created_at=dt.datetime(2024, 3, 1, 13, 0, 0, 123_456, tzinfo=cet),
            created_by="alice",
        )
        tokens.add_token(token)
        assert tokens.get_token("tok-a") == token
        assert tokens.token_named("monitoring ü prod") == token
        assert tokens.list_tokens() == [token]

    @pytest.mark.parametrize("holder", [None, "alice", "integration:grafana"])
    def test_the_holder_round_trips(self, tokens: TokenStore, holder: str | None) -> None:
        """An agent's login, an integration, or nobody (the token's name is the actor)."""
        token = make_token("tok-a", holder=holder)
        tokens.add_token(token)
        assert tokens.get_token("tok-a") == token
        assert tokens.list_tokens()[0].holder == holder
        tokens.revoke_token("tok-a", at(1))
        revoked = tokens.get_token("tok-a")
        assert revoked is not None and revoked.holder == holder, "revoking keeps the holder"

    def test_every_role_round_trips(self, tokens: TokenStore) -> None:
        for n, role in enumerate(Role):
            tokens.add_token(make_token(f"tok-{n}", role=role, created_at=at(n)))
        assert [t.role for t in tokens.list_tokens()] == list(Role)

    def test_a_token_added_already_revoked_stays_revoked(self, tokens: TokenStore) -> None:
        token = make_token("tok-a", revoked_at=at(5))
        tokens.add_token(token)
        stored = tokens.get_token("tok-a")
        assert stored == token
        assert stored is not None and not stored.active
        assert tokens.revoke_token("tok-a", at(10)) is False
        assert tokens.get_token("tok-a") == token, "the first revocation time is kept"

    def test_lookups_by_id_and_by_name_are_exact(self, tokens: TokenStore) -> None:
        tokens.add_token(make_token("tok-a", name="ci"))
        tokens.add_token(make_token("tok-b", name="ci-deploy", created_at=at(1)))
        found = tokens.token_named("ci")
        assert found is not None and found.id == "tok-a"
        assert tokens.token_named("CI") is None
        assert tokens.token_named("c") is None
        assert tokens.get_token("tok-") is None
        got = tokens.get_token("tok-b")
        assert got is not None and got.name == "ci-deploy"

    def test_list_tokens_oldest_first_revoked_included(self, tokens: TokenStore) -> None:
        for token_id, minutes in (("tok-c", 30), ("tok-a", 10), ("tok-b", 20)):
            tokens.add_token(make_token(token_id, created_at=at(minutes)))
        assert tokens.revoke_token("tok-a", at(40)) is True
        assert [t.id for t in tokens.list_tokens()] == ["tok-a", "tok-b", "tok-c"]
        assert [t.active for t in tokens.list_tokens()] == [False, True, True]

    # -- adding --------------------------------------------------------------------------

    def test_a_name_already_used_raises_validation_failed_on_name(self, tokens: TokenStore) -> None:
        first = make_token("tok-a", name="grafana")
        tokens.add_token(first)
        with pytest.raises(ValidationFailed) as info:
            tokens.add_token(make_token("tok-b", name="grafana", role=Role.ADMIN))
        assert info.value.field == "name"
        assert "grafana" in str(info.value)
        assert tokens.list_tokens() == [first], "nothing of the refused token is stored"
        assert tokens.get_token("tok-b") is None

    def test_a_revoked_tokens_name_stays_used(self, tokens: TokenStore) -> None:
        tokens.add_token(make_token("tok-a", name="grafana"))
        assert tokens.revoke_token("tok-a", at(1)) is True
        with pytest.raises(ValidationFailed) as info:
            tokens.add_token(make_token("tok-b", name="grafana", created_at=at(2)))
        assert info.value.field == "name"
        assert [t.id for t in tokens.list_tokens()] == ["tok-a"]

    # -- revoking ------------------------------------------------------------------------

    def test_revoke_once_then_false(self, tokens: TokenStore) -> None:
        tokens.add_token(make_token("tok-a"))
        tokens.add_token(make_token("tok-b", created_at=at(1)))
        assert tokens.revoke_token("tok-a", at(5)) is True
        revoked = tokens.get_token("tok-a")
        assert revoked is not None
        assert revoked.revoked_at == at(5) and not revoked.active
        assert tokens.revoke_token("tok-a", at(9)) is False, "revoked already"
        again = tokens.get_token("tok-a")
        assert again is not None and again.revoked_at == at(5), "the first time is kept"
        other = tokens.get_token("tok-b")
        assert other is not None and other.active, "only the token named is revoked"

    def test_revocation_changes_nothing_else(self, tokens: TokenStore) -> None:
        token = make_token("tok-a", role=Role.ENGINEER, created_by="bob")
        tokens.add_token(token)
        tokens.revoke_token("tok-a", at(5))
        stored = tokens.get_token("tok-a")
        assert stored is not None
        assert stored == ApiToken(
            id=token.id,
            name=token.name,
            role=token.role,
            secret_sha256=token.secret_sha256,
            created_at=token.created_at,
            created_by=token.created_by,
            revoked_at=at(5),
        )
        assert tokens.token_named(token.name) == stored

    # -- times ---------------------------------------------------------------------------

    @pytest.mark.parametrize("field", ["created_at", "revoked_at"])
    def test_naive_times_are_refused_and_nothing_is_stored(
        self, tokens: TokenStore, field: str
    ) -> None:
        """A naive time would be read back in another zone than it was meant in: refused
        with ``ValueError`` (the rule of every adapter's time encoding)."""
        naive: dict[str, Any] = {field: dt.datetime(2024, 3, 1, 12, 0)}
        with pytest.raises(ValueError, match="naive"):
            tokens.add_token(make_token("tok-a", **naive))
        assert tokens.get_token("tok-a") is None
        assert tokens.list_tokens() == []

    def test_a_naive_revocation_time_is_refused(self, tokens: TokenStore) -> None:
        tokens.add_token(make_token("tok-a"))
        with pytest.raises(ValueError, match="naive"):
            tokens.revoke_token("tok-a", dt.datetime(2024, 3, 1, 12, 5))
        stored = tokens.get_token("tok-a")
        assert stored is not None and stored.active

    # -- sharing and failures ------------------------------------------------------------

    def test_every_process_sees_the_same_tokens(
        self, tokens: TokenStore, other_tokens: TokenStore
    ) -> None:
        """The API and the webhooks run in several processes: a token added or revoked
        through one store is seen at once through another over the same data."""
        token = make_token("tok-a", name="grafana")
        tokens.add_token(token)
        assert other_tokens.get_token("tok-a") == token
        assert other_tokens.token_named("grafana") == token
        with pytest.raises(ValidationFailed):
            other_tokens.add_token(make_token("tok-b", name="grafana"))
        assert other_tokens.revoke_token("tok-a", at(3)) is True
        revoked = tokens.get_token("tok-a")
        assert revoked is not None and revoked.revoked_at == at(3)
        assert tokens.revoke_token("tok-a", at(4)) is False

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s: s.get_token("tok-a"), id="get_token"),
            pytest.param(lambda s: s.token_named("grafana"), id="token_named"),
            pytest.param(lambda s: s.list_tokens(), id="list_tokens"),
            pytest.param(lambda s: s.add_token(make_token("tok-z")), id="add_token"),
            pytest.param(lambda s: s.revoke_token("tok-a", at(1)), id="revoke_token"),
        ],
    )
    def test_backend_failures_raise_store_errors_chained(
        self, failing_tokens: TokenStore, call: Callable[[TokenStore], object]
    ) -> None:
        with pytest.raises((StoreUnavailable, StoreError)) as info:
            call(failing_tokens)
        assert info.value.__cause__ is not None  # chained to the driver's or OS's error
