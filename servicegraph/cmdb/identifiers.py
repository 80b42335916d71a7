"""Identifiers: the facts by which sources recognise the same CI, and their normal forms.

Two sources rarely spell an identifier the same way: ``FOC1234X`` and ``foc 1234x`` are one
serial number, ``00:1A:2B:3C:4D:5E`` and ``001a.2b3c.4d5e`` one MAC address,
``Web01.Example.com.`` and ``web01.example.com`` one FQDN. Values are stored normalised,
so matching is an exact lookup.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from servicegraph.cmdb.errors import ValidationFailed

_SPACES = re.compile(r"\s+")
_SERIAL_SEPARATORS = re.compile(r"[\s\-_.:/]+")
_HEX_SEPARATORS = re.compile(r"[\s:.\-]")


def _serial(value: str) -> str:
    # Labels, ERPs and ENTITY-MIB print the same serial as "FOC-1234 X", "foc1234x" ...
    return _SERIAL_SEPARATORS.sub("", value).upper()


def _mac(value: str) -> str:
    digits = _HEX_SEPARATORS.sub("", value).lower()
    if digits.startswith("0x"):
        digits = digits[2:]
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"'{value}' is not a MAC address (12 hex digits)")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _chassis_id(value: str) -> str:
    # LLDP chassis ids are most often MAC addresses; other subtypes are kept as text.
    try:
        return _mac(value)
    except ValueError:
        return _SPACES.sub(" ", value.strip()).lower()


def _hostname(value: str) -> str:
    return value.strip().rstrip(".").lower()


def _short_hostname(value: str) -> str:
    host = _hostname(value)
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return host.split(".", 1)[0]


def _ip(value: str) -> str:
    text = value.strip()
    if "/" in text:
        text = text.split("/", 1)[0]
    return str(ipaddress.ip_address(text))


def _text(value: str) -> str:
    return _SPACES.sub(" ", value.strip()).lower()


@dataclass(frozen=True)
class IdentifierKind:
    name: str
    normalise: Callable[[str], str]
    description: str


IDENTIFIER_KINDS: dict[str, IdentifierKind] = {
    k.name: k
    for k in (
        IdentifierKind("serial_number", _serial, "hardware serial number (ENTITY-MIB, ERP)"),
        IdentifierKind("asset_tag", _serial, "asset tag"),
        IdentifierKind("erp_id", _text, "the ERP's own asset id"),
        IdentifierKind("chassis_id", _chassis_id, "LLDP chassis id"),
        IdentifierKind("mac", _mac, "MAC address"),
        IdentifierKind("fqdn", _hostname, "fully qualified domain name"),
        IdentifierKind("hostname", _short_hostname, "host name without domain"),
        IdentifierKind("management_ip", _ip, "management IP address"),
        IdentifierKind("uuid", _text, "hypervisor or cloud instance UUID"),
        # Items identified only within a parent (an interface of a device) use a composite
        # key built by the collector, e.g. "<device serial>/<ifName>".
        IdentifierKind("component_key", _text, "parent-scoped key, e.g. device/ifName"),
        IdentifierKind("service_id", _text, "service catalogue id"),
    )
}

# Strongest first: the first rule with a match decides which CI an observation is.
DEFAULT_MATCH_ORDER: tuple[str, ...] = (
    "serial_number",
    "asset_tag",
    "erp_id",
    "uuid",
    "chassis_id",
    "mac",
    "component_key",
    "service_id",
    "fqdn",
    "hostname",
    "management_ip",
)

Identifier = tuple[str, str]  # (kind, normalised value)


class IdentifierRules:
    """Ordered identifier rules used to match observations to CIs."""

    def __init__(self, match_order: Sequence[str] = DEFAULT_MATCH_ORDER) -> None:
        unknown = [k for k in match_order if k not in IDENTIFIER_KINDS]
        if unknown:
            raise ValidationFailed(
                f"unknown identifier kinds {unknown}; known: {', '.join(IDENTIFIER_KINDS)}",
                item="identification.match_order",
            )
        self.match_order = tuple(match_order)
        self.rank = {kind: i for i, kind in enumerate(self.match_order)}

    def normalise(
        self, identifiers: Mapping[str, str | Iterable[str] | None], *, item: str
    ) -> tuple[Identifier, ...]:
        """Normalised identifiers in match order, or raise naming the bad one."""
        result: list[Identifier] = []
        for kind, raw in identifiers.items():
            spec = IDENTIFIER_KINDS.get(kind)
            if spec is None:
                raise ValidationFailed(
                    f"unknown identifier kind '{kind}'; known: {', '.join(IDENTIFIER_KINDS)}",
                    item=item,
                    field=f"identifiers.{kind}",
                )
            if raw is None:
                continue
            if isinstance(raw, str | int) and not isinstance(raw, bool):
                values: list[Any] = [raw]
            elif isinstance(raw, list | tuple | set | frozenset):
                values = list(raw)
            else:  # a number of JSON's that is no whole number, true, an object ...
                raise ValidationFailed(
                    "identifier values are strings", item=item, field=f"identifiers.{kind}"
                )
            for value in values:
                if not isinstance(value, str | int):
                    raise ValidationFailed(
                        "identifier values are strings", item=item, field=f"identifiers.{kind}"
                    )
                text = str(value)
                if not text.strip():
                    continue
                try:
                    normal = spec.normalise(text)
                except ValueError as exc:
                    raise ValidationFailed(
                        str(exc), item=item, field=f"identifiers.{kind}"
                    ) from None
                if normal and (kind, normal) not in result:
                    result.append((kind, normal))
        result.sort(key=lambda ident: (self.rank.get(ident[0], len(self.rank)), ident[1]))
        return tuple(result)
