"""SNMP credentials and which target uses which.

Secrets (communities, keys) live in ``Secret``, whose ``repr`` and ``str`` are masked, so
that a credential printed by accident, logged with ``%r`` or dumped into a report shows
its name and never its value. Only the client code that builds a request reveals them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Version = Literal["1", "2c", "3"]
VERSIONS: tuple[Version, ...] = ("1", "2c", "3")

# Names accepted in configuration and on the command line (case-insensitive).
AUTH_PROTOCOLS = ("none", "md5", "sha", "sha224", "sha256", "sha384", "sha512")
# "aes192"/"aes256" use the key extension of draft-blumenthal (net-snmp, most vendors);
# "aes192c"/"aes256c" the one of draft-reeder that Cisco devices use.
PRIV_PROTOCOLS = ("none", "des", "3des", "aes", "aes128", "aes192", "aes256", "aes192c", "aes256c")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CredentialError(ValueError):
    """A credential or credential rule that cannot work; the message says which field."""


@dataclass(frozen=True)
class Secret:
    """A string that does not show itself."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credential:
    """How to talk to an agent: a community (v1, v2c) or a USM user (v3)."""

    name: str
    version: Version = "2c"
    community: Secret | None = None
    user: str | None = None
    auth_protocol: str = "none"
    auth_key: Secret | None = None
    priv_protocol: str = "none"
    priv_key: Secret | None = None
    context: str = ""

    def __post_init__(self) -> None:
        where = f"credential '{self.name}'"
        if self.version not in VERSIONS:
            raise CredentialError(f"{where}: version must be one of {', '.join(VERSIONS)}")
        if self.version in ("1", "2c"):
            if not self.community:
                raise CredentialError(f"{where}: SNMPv{self.version} needs a community")
            return
        if not self.user:
            raise CredentialError(f"{where}: SNMPv3 needs a user name")
        auth, priv = self.auth_protocol.lower(), self.priv_protocol.lower()
        object.__setattr__(self, "auth_protocol", auth)
        object.__setattr__(self, "priv_protocol", priv)
        if auth not in AUTH_PROTOCOLS:
            raise CredentialError(
                f"{where}: unknown auth protocol '{auth}'; use one of {', '.join(AUTH_PROTOCOLS)}"
            )
        if priv not in PRIV_PROTOCOLS:
            raise CredentialError(
                f"{where}: unknown privacy protocol '{priv}'; use one of "
                f"{', '.join(PRIV_PROTOCOLS)}"
            )
        if auth != "none" and (self.auth_key is None or len(self.auth_key.reveal()) < 8):
            raise CredentialError(f"{where}: the auth key must have at least 8 characters")
        if priv != "none":
            if auth == "none":
                raise CredentialError(f"{where}: privacy needs authentication (set auth)")
            if self.priv_key is None or len(self.priv_key.reveal()) < 8:
                raise CredentialError(f"{where}: the privacy key must have at least 8 characters")

    @property
    def security_level(self) -> str:
        if self.version != "3":
            return "community"
        if self.priv_protocol != "none":
            return "authPriv"
        return "authNoPriv" if self.auth_protocol != "none" else "noAuthNoPriv"

    def describe(self) -> str:
        """What may be shown to people: never a secret."""
        if self.version == "3":
            return f"{self.name} (v3 user {self.user}, {self.security_level})"
        return f"{self.name} (v{self.version} community)"


@dataclass(frozen=True)
class CredentialRule:
    """A credential and where it applies: exact target addresses or names, and subnets;
    optionally with its own timeout and retries (devices behind a slow WAN link)."""

    credential: Credential
    targets: frozenset[str] = frozenset()
    subnets: tuple[Network, ...] = ()
    timeout: float | None = None
    retries: int | None = None


class CredentialSet:
    """Finds the credential for an address: an exact target rule first, then the rule with
    the longest matching subnet (the first rule on a tie), then the default."""

    def __init__(self, rules: Sequence[CredentialRule] = (), default: Credential | None = None):
        self.rules = tuple(rules)
        self.default = default

    def lookup(self, host: str) -> CredentialRule | None:
        """The rule for ``host``, or a rule wrapping the default; None if neither."""
        wanted = host.strip().lower()
        for rule in self.rules:
            if wanted in rule.targets:
                return rule
        best: tuple[int, CredentialRule] | None = None
        try:
            address = ipaddress.ip_address(wanted)
        except ValueError:
            address = None
        if address is not None:
            for rule in self.rules:
                for net in rule.subnets:
                    if (
                        address.version == net.version
                        and address in net
                        and (best is None or net.prefixlen > best[0])
                    ):
                        best = (net.prefixlen, rule)
        if best is not None:
            return best[1]
        return CredentialRule(self.default) if self.default is not None else None

    def for_address(self, host: str) -> Credential | None:
        rule = self.lookup(host)
        return rule.credential if rule is not None else None

    def with_default(self, default: Credential | None) -> CredentialSet:
        """The same rules with another default (e.g. from the command line)."""
        return CredentialSet(self.rules, default if default is not None else self.default)

    def __repr__(self) -> str:
        return f"CredentialSet({[r.credential.describe() for r in self.rules]})"


def _secret(value: Any) -> Secret | None:
    if value is None:
        return None
    if isinstance(value, Secret):
        return value
    reveal = getattr(value, "get_secret_value", None)  # pydantic SecretStr
    return Secret(str(reveal() if callable(reveal) else value))


def credential_from_mapping(data: Mapping[str, Any], *, default_name: str) -> Credential:
    """A credential from configuration: ``version``, ``community`` or ``user``,
    ``auth_protocol``, ``auth_key``, ``priv_protocol``, ``priv_key``, ``context``."""
    version = str(data.get("version", "2c")).lower().removeprefix("v")
    if version == "2":
        version = "2c"
    if version not in VERSIONS:
        raise CredentialError(
            f"credential '{data.get('name', default_name)}': version must be 1, 2c or 3"
        )
    return Credential(
        name=str(data.get("name") or default_name),
        version=version,
        community=_secret(data.get("community")),
        user=data.get("user"),
        auth_protocol=str(data.get("auth_protocol") or "none"),
        auth_key=_secret(data.get("auth_key")),
        priv_protocol=str(data.get("priv_protocol") or "none"),
        priv_key=_secret(data.get("priv_key")),
        context=str(data.get("context") or ""),
    )


def parse_subnets(values: Iterable[str], *, item: str) -> tuple[Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise CredentialError(
                f"{item}: '{value}' is not a subnet such as 10.0.0.0/24"
            ) from None
    return tuple(networks)


def rule_from_mapping(data: Mapping[str, Any], *, position: int) -> CredentialRule:
    name = str(data.get("name") or f"credentials[{position}]")
    credential = credential_from_mapping(data, default_name=name)
    targets = frozenset(str(t).strip().lower() for t in data.get("targets") or ())
    subnets = parse_subnets(data.get("subnets") or (), item=f"credential '{name}'")
    if not targets and not subnets:
        raise CredentialError(
            f"credential '{name}': say where it applies with 'targets' and/or 'subnets' "
            "(use subnets: [0.0.0.0/0] for everything)"
        )
    timeout = data.get("timeout")
    retries = data.get("retries")
    if timeout is not None and float(timeout) <= 0:
        raise CredentialError(f"credential '{name}': timeout must be positive")
    if retries is not None and int(retries) < 0:
        raise CredentialError(f"credential '{name}': retries must be 0 or more")
    return CredentialRule(
        credential,
        targets,
        subnets,
        timeout=None if timeout is None else float(timeout),
        retries=None if retries is None else int(retries),
    )
