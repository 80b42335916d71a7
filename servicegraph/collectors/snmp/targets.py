"""Discovery targets: addresses and names, ``host:port``, and CIDR ranges to sweep.

Neighbours found in LLDP/CDP tables become targets too, one crawl step deeper, but only
inside the allowed subnets: a crawl must never wander into networks nobody asked about.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from servicegraph.collectors.snmp.credentials import Credential, Network

DEFAULT_PORT = 161


class TargetError(ValueError):
    """A target expression that cannot be used; the message names it."""


@dataclass(frozen=True)
class Target:
    host: str  # an IP address or a DNS name
    port: int = DEFAULT_PORT
    origin: str = "target"  # target, sweep, neighbour
    depth: int = 0  # crawl steps from a target given by the user
    via: str | None = None  # the device whose neighbour table named it
    credential: Credential | None = None  # None: look it up by address

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORT else f"{host}:{self.port}"


def _port(text: str, expression: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TargetError(f"'{expression}': the port must be a number from 1 to 65535")
    return int(text)


def _split(expression: str, default_port: int) -> tuple[str, int]:
    text = expression.strip()
    if text.startswith("["):  # [v6 address]:port
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise TargetError(f"'{expression}': missing ']' after the IPv6 address")
        if rest and not rest.startswith(":"):
            raise TargetError(f"'{expression}': expected ':PORT' after ']'")
        return host, _port(rest[1:], expression) if rest else default_port
    if text.count(":") == 1:  # host:port (an IPv6 address has several colons)
        host, _, port = text.partition(":")
        return host, _port(port, expression)
    return text, default_port


def parse_target(
    expression: str,
    *,
    default_port: int = DEFAULT_PORT,
    max_sweep_hosts: int = 4096,
    credential: Credential | None = None,
) -> list[Target]:
    """Targets from one expression: ``10.0.0.1``, ``sw1.example.com``, ``10.0.0.1:1161``,
    ``[2001:db8::1]:161``, or a range to sweep such as ``10.0.0.0/24`` (its usable hosts)."""
    if not expression or not expression.strip():
        raise TargetError("empty target")
    text = expression.strip()
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise TargetError(
                f"'{expression}' is not a network such as 10.0.0.0/24 or 2001:db8::/120"
            ) from None
        if network.num_addresses == 1:
            return [Target(str(network.network_address), default_port, credential=credential)]
        count = network.num_addresses - (
            2 if network.version == 4 and network.prefixlen < 31 else 0
        )
        if count > max_sweep_hosts:
            raise TargetError(
                f"'{expression}' has {count:,} addresses, more than the sweep limit of "
                f"{max_sweep_hosts:,} (raise snmp.max_sweep_hosts to allow it)"
            )
        return [
            Target(str(address), default_port, origin="sweep", credential=credential)
            for address in network.hosts()
        ]
    host, port = _split(text, default_port)
    if not host:
        raise TargetError(f"'{expression}': missing host")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not all(
            part and (part.replace("-", "").replace("_", "").isalnum()) for part in host.split(".")
        ):
            raise TargetError(f"'{expression}' is neither an IP address nor a host name") from None
        host = host.lower()
    return [Target(host, port, credential=credential)]


def parse_targets(
    expressions: Iterable[str],
    *,
    default_port: int = DEFAULT_PORT,
    max_sweep_hosts: int = 4096,
    credential: Credential | None = None,
) -> list[Target]:
    """All targets of several expressions, each address once (first mention wins)."""
    seen: dict[tuple[str, int], Target] = {}
    total = 0
    for expression in expressions:
        for target in parse_target(
            expression,
            default_port=default_port,
            max_sweep_hosts=max_sweep_hosts,
            credential=credential,
        ):
            seen.setdefault((target.host, target.port), target)
        total = len(seen)
        if total > max_sweep_hosts:
            raise TargetError(
                f"{total:,} targets, more than the limit of {max_sweep_hosts:,} "
                "(raise snmp.max_sweep_hosts to allow it)"
            )
    return list(seen.values())


def in_subnets(host: str, subnets: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in subnets)


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
