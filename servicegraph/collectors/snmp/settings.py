"""SNMP settings (the ``snmp:`` section of the settings file, ``SERVICEGRAPH_SNMP__*``).

Secrets are ``SecretStr``: settings can be printed or logged without showing them. The
credentials are checked (protocols, key lengths, subnets) when the SNMP commands build them
with ``credential_set`` and ``trap_user_list``, which raise ``CredentialError`` naming the
entry and field: a pydantic validation error would quote the raw input, keys included.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from servicegraph.collectors.snmp.credentials import (
    Credential,
    CredentialSet,
    credential_from_mapping,
    parse_subnets,
    rule_from_mapping,
)
from servicegraph.collectors.snmp.discovery import DiscoveryOptions
from servicegraph.collectors.snmp.session import SessionOptions
from servicegraph.collectors.snmp.traps import DEFAULT_PORT as TRAP_PORT
from servicegraph.collectors.snmp.traps import TrapUser


def _version(value: Any) -> str:
    text = str(value).strip().lower().removeprefix("v")
    return "2c" if text == "2" else text


class SnmpCredentialSettings(BaseModel):
    """A credential and where it applies (exact ``targets`` and/or ``subnets``), with an
    optional timeout and retries for those devices."""

    # errors must not echo the input: it holds communities and keys
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str | None = None
    version: str = "2c"
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: str = "none"
    auth_key: SecretStr | None = None
    priv_protocol: str = "none"
    priv_key: SecretStr | None = None
    context: str = ""
    targets: list[str] = Field(default_factory=list)
    subnets: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)

    _normal_version = field_validator("version", mode="before")(_version)


class SnmpTrapUserSettings(BaseModel):
    """An SNMPv3 user allowed to send traps; ``engine_id`` is the sender's engine id."""

    # errors must not echo the input: it holds communities and keys
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    user: str
    auth_protocol: str = "sha"
    auth_key: SecretStr | None = None
    priv_protocol: str = "none"
    priv_key: SecretStr | None = None
    engine_id: str


class SnmpSettings(BaseModel):
    # errors must not echo the input: it holds communities and keys
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    port: int = Field(default=161, ge=1, le=65535)
    timeout: float = Field(default=2.0, gt=0, description="Seconds to wait for one answer.")
    retries: int = Field(default=1, ge=0, le=10)
    max_repetitions: int = Field(default=25, ge=1, le=1000, description="Rows per GETBULK.")
    max_varbinds: int = Field(default=250, ge=1, description="Values per GETBULK response.")
    concurrency: int = Field(default=16, ge=1, le=1024, description="Devices read at once.")
    device_timeout: float = Field(default=300, gt=0, description="Deadline for one device.")
    engine: Literal["fast", "pysnmp"] = "fast"
    targets: list[str] = Field(
        default_factory=list, description="The inventory: what `discover` reads by default."
    )
    crawl_depth: int = Field(default=0, ge=0, le=16)
    allowed_subnets: list[str] = Field(default_factory=list)
    max_sweep_hosts: int = Field(default=4096, ge=1)
    credentials: list[SnmpCredentialSettings] = Field(default_factory=list)
    poll_interval: float = Field(default=60, gt=0)
    trap_host: str = "0.0.0.0"
    trap_port: int = Field(default=TRAP_PORT, ge=0, le=65535)
    trap_communities: list[SecretStr] = Field(default_factory=list)
    trap_users: list[SnmpTrapUserSettings] = Field(default_factory=list)

    def credential_set(self, default: Credential | None = None) -> CredentialSet:
        rules = [
            rule_from_mapping(c.model_dump(), position=i) for i, c in enumerate(self.credentials)
        ]
        return CredentialSet(rules, default)

    def trap_user_list(self) -> list[TrapUser]:
        return [
            TrapUser(
                credential_from_mapping(
                    {**u.model_dump(), "version": "3", "name": f"trap user {u.user}"},
                    default_name=u.user,
                ),
                u.engine_id,
            )
            for u in self.trap_users
        ]

    def session_options(self, **overrides: Any) -> SessionOptions:
        values: dict[str, Any] = {
            "timeout": self.timeout,
            "retries": self.retries,
            "max_repetitions": self.max_repetitions,
            "max_varbinds": self.max_varbinds,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return SessionOptions(**values)

    def discovery_options(self, **overrides: Any) -> DiscoveryOptions:
        values: dict[str, Any] = {
            "concurrency": self.concurrency,
            "device_timeout": self.device_timeout,
            "crawl_depth": self.crawl_depth,
            "allowed_subnets": parse_subnets(self.allowed_subnets, item="snmp.allowed_subnets"),
            "default_port": self.port,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return DiscoveryOptions(**values)
