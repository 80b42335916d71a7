"""The services under the API, without HTTP: token parsing, the timeline of merged CIs,
and a ticket unit telling correlation workers to reload."""

from __future__ import annotations

import pytest

from servicegraph.access.model import Role
from servicegraph.cmdb.context import change_context
from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.observation import CIObservation
from servicegraph.cmdb.reconciliation import batch_from
from servicegraph.ticketing.errors import InvalidTransition
from servicegraph.ticketing.timeline import TimelineKind
from tests.graphql.conftest import Site


def test_tokens_authenticate_only_what_they_issued(site: Site) -> None:
    tokens = site.services.tokens
    token, secret = tokens.create("svc", Role.ENGINEER, created_by="test")
    principal = tokens.authenticate(f"  {secret} ")
    assert principal is not None and (principal.name, principal.role) == ("svc", Role.ENGINEER)
    prefix, token_id, rest = secret.split("_", 2)
    assert (prefix, token_id) == ("sgt", token.id)
    other = site.services.tokens.find("viewer-token").id
    for wrong in (
        "",
        rest,
        f"sgt_{token_id}_{rest[:-1]}A" if rest[-1] != "A" else f"sgt_{token_id}_{rest[:-1]}B",
        f"sgt_{other}_{rest}",  # another token's id with this secret
        # ids are hex: upper case is another id (unless this one has only digits)
        *([f"sgt_{token_id.upper()}_{rest}"] if token_id.upper() != token_id else []),
    ):
        assert tokens.authenticate(wrong) is None, wrong
    with pytest.raises(ValidationFailed) as bad_name:
        tokens.create("no spaces please", "viewer", created_by="test")
    assert bad_name.value.field == "name"
    revoked = tokens.revoke(token.id)
    assert revoked.revoked_at is not None
    assert tokens.revoke("svc").revoked_at == revoked.revoked_at, "revoking twice changes nothing"
    assert tokens.authenticate(secret) is None


def test_the_timeline_of_a_survivor_holds_its_duplicates_past(site: Site) -> None:
    report = site.services.reconciler.apply(
        batch_from(
            "import",
            [
                CIObservation(
                    ci_class="server",
                    name="db-1-dup",
                    key="db-1-dup",
                    identifiers={"serial_number": "DUP1"},
                )
            ],
        )
    )
    duplicate = report.ci_ids[0]
    assert duplicate is not None
    site.ids["db-1-dup"] = duplicate
    site.alert("DiskFull", "db-1-dup")
    with change_context(actor="merger"):
        site.services.reconciler.merge(site.ids["db-1"], duplicate)
    entries = site.services.desk.timeline.timeline(site.ids["db-1"])
    fired = [e for e in entries if e.kind is TimelineKind.ALERT_FIRED]
    assert [(e.alert.name if e.alert else None, e.ci_id) for e in fired] == [
        ("DiskFull", duplicate)
    ]
    assert any(e.summary == "merged db-1-dup into this CI" for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)


def test_ticket_work_makes_correlation_reload(site: Site) -> None:
    site.alert("NodeDown", "db-1")
    incident_id = site.incident_of("db-1")["id"]
    with site.services.inbox.unit() as unit:
        before = unit.state_version()
    with change_context(actor="carol"):
        incident = site.services.desk.incidents.resolve(incident_id, "replaced the PSU")
    with site.services.inbox.unit() as unit:
        assert unit.state_version() == before + 1
    assert incident.resolved_by == "carol"
    with pytest.raises(InvalidTransition), change_context(actor="carol"):
        site.services.desk.incidents.resolve(incident_id, "again")
    site.alert("NodeDown", "db-1")  # the root alert is still firing: a repeat reopens it
    reopened = site.services.desk.incidents.get(incident_id)
    assert reopened.status.value == "new" and reopened.reopen_count == 1
