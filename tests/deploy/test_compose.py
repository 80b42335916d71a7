"""docker-compose.yml and the Dockerfile, checked without Docker (none runs here): the
services and their wiring, healthchecks, volumes, and that every environment variable
the app containers get is a real setting that validates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from servicegraph.cli import app
from servicegraph.config import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("api", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, for the tests."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, value)


def test_the_stack_has_its_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"neo4j", "redis", *APP_SERVICES}


def test_neo4j_is_the_5_lts_community_image_with_a_volume_and_healthcheck(
    compose: dict[str, Any],
) -> None:
    neo4j = compose["services"]["neo4j"]
    assert re.fullmatch(r"neo4j:5\.26(\.\d+)?-community", neo4j["image"])
    assert "neo4j-data:/data" in neo4j["volumes"]
    assert "neo4j-data" in compose["volumes"]
    check = " ".join(neo4j["healthcheck"]["test"])
    assert "cypher-shell" in check and "RETURN 1" in check
    assert neo4j["environment"]["NEO4J_AUTH"].startswith("neo4j/${NEO4J_PASSWORD:?")
    assert "NEO4J_db_lock_acquisition_timeout" in neo4j["environment"]


def test_redis_is_durable_and_checked(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "redis-data:/data" in redis["volumes"]


def test_app_services_run_the_right_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert services["worker"]["command"][0] == "worker"
    assert services["beat"]["command"] == ["beat"]
    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    for name in APP_SERVICES:
        assert services[name]["command"][0] in commands
        assert services[name]["build"] == "."  # one image for all three
        for dependency in ("neo4j", "redis"):
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"
        assert "servicegraph-data:/data" in services[name]["volumes"]
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])


def test_every_named_volume_is_declared(compose: dict[str, Any]) -> None:
    used = {
        mount.split(":", 1)[0]
        for service in compose["services"].values()
        for mount in service.get("volumes", [])
        if not mount.startswith((".", "/"))
    }
    assert used == set(compose["volumes"])


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_environment_is_valid_settings(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = compose["services"][service]["environment"]
    env = {k: interpolate(str(v), {"NEO4J_PASSWORD": "pw"}) for k, v in environment.items()}
    fields = {f"SERVICEGRAPH_{name.upper()}" for name in Settings.model_fields}
    unknown = {k for k in env if k.startswith("SERVICEGRAPH_") and k not in fields}
    assert unknown == set()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.store == "neo4j"
    assert settings.neo4j_uri == "neo4j://neo4j:7687"
    assert settings.neo4j_password.get_secret_value() == "pw"
    assert settings.broker_url == "redis://redis:6379/0"
    assert settings.embedded_worker is False


def test_the_password_is_required(compose: dict[str, Any]) -> None:
    environment = compose["services"]["api"]["environment"]
    with pytest.raises(KeyError, match="NEO4J_PASSWORD"):
        interpolate(environment["SERVICEGRAPH_NEO4J_PASSWORD"], {})


def test_dockerfile_builds_one_non_root_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert 'ENTRYPOINT ["servicegraph"]' in dockerfile
    assert re.search(r"^USER servicegraph$", dockerfile, re.M)
    assert "COPY pyproject.toml README.md" in dockerfile
