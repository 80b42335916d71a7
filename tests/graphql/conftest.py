"""A small site (examples/small-site.json) behind the API, a token per role, and a helper
to post GraphQL through HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from servicegraph.bootstrap import Services, bootstrap
from servicegraph.cmdb.importer import read_files
from servicegraph.config import CorrelationSettings, Settings
from servicegraph.events.model import Event, EventStatus, Severity, digest
from servicegraph.http.app import create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROLES = (
    "viewer",
    "engineer",
    "problem_manager",
    "admin",
    "integration",
    "agent",
    "group_manager",
)


@dataclass
class Site:
    services: Services
    client: TestClient
    ids: dict[str, str]  # import key -> CI id
    tokens: dict[str, str] = field(default_factory=dict)  # role -> secret

    def gql(
        self,
        query: str,
        role: str | None = "admin",
        *,
        token: str | None = None,
        variables: dict[str, Any] | None = None,
        **named: Any,
    ) -> dict[str, Any]:
        """The response body; asserts HTTP 200. Variables come as keywords, or as
        ``variables`` when their names are not identifiers."""
        variables = {**(variables or {}), **named}
        secret = token or (self.tokens[role] if role else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def alert(self, name: str, key: str, status: str = "firing", **labels: str) -> None:
        """An event on the CI imported as ``key``, correlated at once."""
        now = dt.datetime.now(dt.UTC)
        all_labels = {"ci_id": self.ids[key], **labels}
        event = Event(
            source="test",
            name=name,
            status=EventStatus(status),
            severity=Severity.CRITICAL,
            occurred_at=now,
            fingerprint=digest("test", name, key),
            event_id=digest("test", name, key, status, now.isoformat()),
            labels=all_labels,
        )
        self.services.correlator.ingest([event])
        self.services.correlator.drain()

    def incident_of(self, key: str) -> dict[str, Any]:
        """The newest open incident about the CI imported as ``key``."""
        data = self.data(
            "query($ci: ID!) { incidents(filter: {ciId: $ci, open: true}) { id number title } }",
            ci=self.ids[key],
        )
        incident: dict[str, Any] = data["incidents"][0]
        return incident

    def data(
        self,
        query: str,
        role: str | None = "admin",
        *,
        variables: dict[str, Any] | None = None,
        **named: Any,
    ) -> dict[str, Any]:
        """The data of a query that must succeed."""
        body = self.gql(query, role, variables=variables, **named)
        assert not body.get("errors"), body["errors"]
        result: dict[str, Any] = body["data"]
        return result


def make_site(tmp_path: Path, **settings: Any) -> Iterator[Site]:
    services = bootstrap(
        Settings(
            data_dir=tmp_path / "data",
            embedded_worker=False,
            correlation=CorrelationSettings(hold_time_s=0),
            **settings,
        )
    )
    batch = read_files([EXAMPLES / "small-site.json"], services.classes, source="import")
    report = services.reconciler.apply(batch)
    ids = {obs.key: ci_id for obs, ci_id in zip(batch.cis, report.ci_ids, strict=True)}
    tokens = {
        role: services.tokens.create(f"{role}-token", role, created_by="test")[1] for role in ROLES
    }
    with TestClient(create_app(services)) as client:
        yield Site(services, client, ids, tokens)  # type: ignore[arg-type]
    services.close()


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path)
