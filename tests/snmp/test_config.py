"""Targets, credentials and SNMP settings: what users type, and clear errors when wrong."""

from __future__ import annotations

import ipaddress

import pytest

from servicegraph.cli.snmp import cli_credential
from servicegraph.collectors.snmp.credentials import (
    Credential,
    CredentialError,
    CredentialRule,
    CredentialSet,
    Secret,
)
from servicegraph.collectors.snmp.settings import SnmpSettings
from servicegraph.collectors.snmp.targets import TargetError, parse_target, parse_targets
from servicegraph.config import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", [("10.0.0.1", 161, "target")]),
        ("10.0.0.1:1161", [("10.0.0.1", 1161, "target")]),
        ("SW1.Example.net", [("sw1.example.net", 161, "target")]),
        ("sw1:1161", [("sw1", 1161, "target")]),
        ("2001:db8::1", [("2001:db8::1", 161, "target")]),
        ("[2001:db8::1]:1161", [("2001:db8::1", 1161, "target")]),
        ("10.0.0.0/30", [("10.0.0.1", 161, "sweep"), ("10.0.0.2", 161, "sweep")]),
        ("10.0.0.7/32", [("10.0.0.7", 161, "target")]),
        ("10.0.0.4/31", [("10.0.0.4", 161, "sweep"), ("10.0.0.5", 161, "sweep")]),
    ],
)
def test_targets(text: str, expected: list[tuple[str, int, str]]) -> None:
    assert [(t.host, t.port, t.origin) for t in parse_target(text)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty target"),
        ("10.0.0.1:0", "port must be a number"),
        ("10.0.0.1:http", "port must be a number"),
        ("10.0.0.0/33", "not a network"),
        ("not a host", "neither an IP address nor a host name"),
        ("[2001:db8::1", "missing ']'"),
        ("10.0.0.0/16", "sweep limit of 4,096"),
    ],
)
def test_bad_targets_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(text)


def test_targets_are_deduplicated_and_bounded() -> None:
    found = parse_targets(["10.0.0.1", "10.0.0.0/30", "10.0.0.2:161"])
    assert [t.host for t in found] == ["10.0.0.1", "10.0.0.2"]
    with pytest.raises(TargetError, match="more than the limit"):
        parse_targets(["10.0.0.0/24", "10.0.1.0/24"], max_sweep_hosts=300)


def _c(name: str) -> Credential:
    return Credential(name, "2c", community=Secret(name))


def test_credentials_by_target_then_longest_subnet_then_default() -> None:
    credentials = CredentialSet(
        [
            CredentialRule(_c("wide"), subnets=(ipaddress.ip_network("10.0.0.0/8"),)),
            CredentialRule(_c("narrow"), subnets=(ipaddress.ip_network("10.1.0.0/16"),)),
            CredentialRule(_c("one"), targets=frozenset({"10.1.2.3", "core.example.net"})),
        ],
        default=_c("default"),
    )
    names = {
        host: credentials.for_address(host).name  # type: ignore[union-attr]
        for host in ("10.1.2.3", "10.1.9.9", "10.9.9.9", "192.0.2.1", "core.example.net")
    }
    assert names == {
        "10.1.2.3": "one",
        "10.1.9.9": "narrow",
        "10.9.9.9": "wide",
        "192.0.2.1": "default",
        "core.example.net": "one",
    }
    assert CredentialSet().for_address("10.0.0.1") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": "2c"}, "needs a community"),
        ({"version": "3"}, "needs a user name"),
        ({"version": "3", "user": "u", "auth_protocol": "sha", "auth_key": Secret("short")}, "8"),
        (
            {"version": "3", "user": "u", "priv_protocol": "aes", "priv_key": Secret("x" * 8)},
            "needs authentication",
        ),
        ({"version": "3", "user": "u", "auth_protocol": "sha1024"}, "unknown auth protocol"),
        ({"version": "4"}, "version must be"),
    ],
)
def test_unusable_credentials_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        Credential("c", **kwargs)  # type: ignore[arg-type]


def test_secrets_never_show() -> None:
    credential = Credential(
        "core",
        "3",
        user="monitor",
        auth_protocol="SHA",
        auth_key=Secret("auth-secret-1"),
        priv_protocol="AES",
        priv_key=Secret("priv-secret-1"),
    )
    shown = " ".join((repr(credential), str(credential), credential.describe()))
    assert "secret-1" not in shown
    assert credential.security_level == "authPriv"
    assert credential.auth_protocol == "sha"
    assert repr(CredentialSet([CredentialRule(credential, targets=frozenset({"x"}))]))


def test_snmp_settings_from_yaml_and_environment(tmp_path, monkeypatch) -> None:
    config = tmp_path / "servicegraph.yaml"
    config.write_text(
        """
snmp:
  timeout: 1.5
  targets: [10.0.0.0/30]
  allowed_subnets: [10.0.0.0/8]
  credentials:
    - name: core
      version: 3
      user: monitor
      auth_protocol: sha
      auth_key: auth-secret-1
      priv_protocol: aes
      priv_key: priv-secret-1
      subnets: [10.0.0.0/24]
      timeout: 5
    - name: rest
      community: public-secret
      subnets: [0.0.0.0/0]
  trap_users:
    - {user: traps, auth_key: auth-secret-2, engine_id: "0x8000000001020304"}
"""
    )
    monkeypatch.setenv("SERVICEGRAPH_CONFIG", str(config))
    monkeypatch.setenv("SERVICEGRAPH_SNMP__RETRIES", "3")
    snmp = Settings().snmp
    assert (snmp.timeout, snmp.retries) == (1.5, 3)
    rule = snmp.credential_set().lookup("10.0.0.5")
    assert rule is not None and rule.credential.name == "core" and rule.timeout == 5
    assert snmp.credential_set().for_address("192.0.2.1").name == "rest"  # type: ignore[union-attr]
    assert snmp.trap_user_list()[0].engine_id == "8000000001020304"
    assert "secret" not in repr(snmp)
    assert snmp.discovery_options(crawl_depth=2).crawl_depth == 2


def test_bad_snmp_credentials_fail_with_the_entry_named_and_no_secret() -> None:
    snmp = SnmpSettings(
        credentials=[
            {
                "name": "core",
                "version": "3",
                "user": "u",
                "auth_protocol": "sha",
                "auth_key": "short-1",
            }
        ]
    )
    with pytest.raises(CredentialError, match=r"credential 'core'.*8 characters") as exc:
        snmp.credential_set()
    assert "short-1" not in str(exc.value)


def test_crawling_needs_allowed_subnets() -> None:
    with pytest.raises(ValueError, match="allowed subnets"):
        SnmpSettings().discovery_options(crawl_depth=1)


@pytest.mark.parametrize(
    ("options", "outcome"),
    [
        ({}, None),
        ({"community": "c"}, ("2c", "c")),
        ({"community": "c", "version": "1"}, ("1", "c")),
        ({"user": "u", "auth_key": "k" * 8}, ("3", None)),
        ({"version": "3"}, CredentialError),
        ({"community": "c", "version": "3", "user": "u"}, CredentialError),
        ({"user": "u", "version": "2c"}, CredentialError),
        ({"version": "2c"}, CredentialError),
    ],
)
def test_command_line_credentials(options: dict[str, str], outcome: object) -> None:
    args = {
        k: None
        for k in (
            "community",
            "version",
            "user",
            "auth_protocol",
            "auth_key",
            "priv_protocol",
            "priv_key",
        )
    }
    args.update(options)
    if outcome is CredentialError:
        with pytest.raises(CredentialError):
            cli_credential(context="", **args)
        return
    credential = cli_credential(context="", **args)
    if outcome is None:
        assert credential is None
    else:
        assert credential is not None
        version, community = outcome  # type: ignore[misc]
        assert credential.version == version
        assert (credential.community.reveal() if credential.community else None) == community
