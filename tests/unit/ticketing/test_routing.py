"""Routing rules as data, evaluated in order by a pure function (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.ticketing.model import Channel, TicketType
from servicegraph.ticketing.routing import RoutingDecision, RoutingRules, TicketFacts, route


def facts(**kw: Any) -> TicketFacts:
    kw.setdefault("type", TicketType.INCIDENT)
    kw.setdefault("channel", Channel.EMAIL)
    return TicketFacts(**kw)


def decide(rules: list[dict[str, Any]], f: TicketFacts, **kw: Any) -> RoutingDecision:
    kw.setdefault("triage_group", "triage")
    return route(f, RoutingRules.build(rules), **kw)


SERVER_TEST = ("server", {"environment": "test"})
DB_PROD = ("database", {"environment": "prod", "support_group": "dba"})
SERVER_PROD = ("server", {"environment": "prod"})

# --- conditions: (when, facts, matches) ---------------------------------------------------

CONDITION_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("no conditions", {}, {}, True),
    ("type", {"type": "incident"}, {}, True),
    ("type other", {"type": "service_request"}, {}, False),
    ("type any of", {"type": ["service_request", "incident"]}, {}, True),
    ("type upper case", {"type": "INCIDENT"}, {}, True),
    ("channel", {"channel": "email"}, {}, True),
    ("channel other", {"channel": "phone"}, {}, False),
    ("channel any of", {"channel": ["phone", "monitoring"]}, {"channel": Channel.MONITORING}, True),
    ("service", {"service": "vpn"}, {"service": "vpn"}, True),
    ("service other", {"service": "vpn"}, {"service": "email"}, False),
    ("service missing", {"service": "vpn"}, {}, False),
    ("service any of", {"service": ["vpn", "email"]}, {"service": "email"}, True),
    ("organisation", {"organisation": "acme"}, {"organisation": "acme"}, True),
    ("organisation other", {"organisation": "acme"}, {"organisation": "initech"}, False),
    ("organisation missing", {"organisation": "acme"}, {}, False),
    ("category itself", {"category": "network"}, {"category": "network"}, True),
    ("category prefix", {"category": "network"}, {"category": "network/vpn"}, True),
    ("category deep prefix", {"category": "network"}, {"category": "network/vpn/token"}, True),
    ("category not a segment", {"category": "network"}, {"category": "networking"}, False),
    ("category parent", {"category": "network/vpn"}, {"category": "network"}, False),
    ("category missing", {"category": "network"}, {}, False),
    (
        "category any of",
        {"category": ["hardware", "network/vpn"]},
        {"category": "network/vpn/x"},
        True,
    ),
    ("ci_class", {"ci_class": "server"}, {"cis": (SERVER_TEST,)}, True),
    ("ci_class any CI", {"ci_class": "database"}, {"cis": (SERVER_TEST, DB_PROD)}, True),
    ("ci_class other", {"ci_class": "router"}, {"cis": (SERVER_TEST,)}, False),
    ("ci_class no CI", {"ci_class": "server"}, {}, False),
    ("ci_attribute", {"ci_attribute": {"support_group": "dba"}}, {"cis": (DB_PROD,)}, True),
    ("ci_attribute case", {"ci_attribute": {"support_group": "DBA"}}, {"cis": (DB_PROD,)}, True),
    (
        "ci_attribute any of",
        {"ci_attribute": {"environment": ["dr", "prod"]}},
        {"cis": (DB_PROD,)},
        True,
    ),
    (
        "ci_attribute other",
        {"ci_attribute": {"environment": "prod"}},
        {"cis": (SERVER_TEST,)},
        False,
    ),
    ("ci_attribute missing", {"ci_attribute": {"owner": "x"}}, {"cis": (SERVER_TEST,)}, False),
    (
        "ci_attribute in list",
        {"ci_attribute": {"tags": "edge"}},
        {"cis": (("server", {"tags": ["core", "edge"]}),)},
        True,
    ),
    (
        "ci_attribute number",
        {"ci_attribute": {"rack_units": 2}},
        {"cis": (("server", {"rack_units": 2}),)},
        True,
    ),
    (
        "ci_attribute number no text",
        {"ci_attribute": {"rack_units": 2}},
        {"cis": (("server", {"rack_units": "2"}),)},
        False,
    ),
    (
        "ci_attribute bool",
        {"ci_attribute": {"monitored": True}},
        {"cis": (("server", {"monitored": True}),)},
        True,
    ),
    (
        "ci_attribute bool no 1",
        {"ci_attribute": {"monitored": True}},
        {"cis": (("server", {"monitored": 1}),)},
        False,
    ),
    (
        "ci_attribute all keys",
        {"ci_attribute": {"environment": "prod", "support_group": "dba"}},
        {"cis": (DB_PROD,)},
        True,
    ),
    (
        "ci_attribute all keys one CI",
        {"ci_attribute": {"environment": "test", "support_group": "dba"}},
        {"cis": (SERVER_TEST, DB_PROD)},
        False,
    ),
    # ci_class and ci_attribute hold for one and the same CI
    (
        "ci joint",
        {"ci_class": "server", "ci_attribute": {"environment": "prod"}},
        {"cis": (SERVER_TEST, DB_PROD)},
        False,
    ),
    (
        "ci joint found",
        {"ci_class": "server", "ci_attribute": {"environment": "prod"}},
        {"cis": (DB_PROD, SERVER_PROD)},
        True,
    ),
    ("title word", {"title_keywords": "vpn"}, {"title": "VPN down in Zurich"}, True),
    ("title not inside a word", {"title_keywords": "vpn"}, {"title": "vpnclient crashes"}, False),
    (
        "title any of",
        {"title_keywords": ["printer", "disk full"]},
        {"title": "Disk full on db1"},
        True,
    ),
    ("title phrase whole", {"title_keywords": "disk full"}, {"title": "disk fullness"}, False),
    ("title punctuation", {"title_keywords": "c++"}, {"title": "c++ build fails"}, True),
    ("title empty", {"title_keywords": "vpn"}, {}, False),
    # priority 1 is the most urgent; the bounds speak of urgency
    ("at least 2: p1", {"priority_at_least": 2}, {"priority": 1}, True),
    ("at least 2: p2", {"priority_at_least": 2}, {"priority": 2}, True),
    ("at least 2: p3", {"priority_at_least": 2}, {"priority": 3}, False),
    ("at least 2: none", {"priority_at_least": 2}, {}, False),
    ("at most 3: p3", {"priority_at_most": 3}, {"priority": 3}, True),
    ("at most 3: p5", {"priority_at_most": 3}, {"priority": 5}, True),
    ("at most 3: p2", {"priority_at_most": 3}, {"priority": 2}, False),
    ("at most 3: none", {"priority_at_most": 3}, {}, False),
    ("between: p2", {"priority_at_least": 3, "priority_at_most": 2}, {"priority": 2}, True),
    ("between: p3", {"priority_at_least": 3, "priority_at_most": 2}, {"priority": 3}, True),
    ("between: p1", {"priority_at_least": 3, "priority_at_most": 2}, {"priority": 1}, False),
    ("between: p4", {"priority_at_least": 3, "priority_at_most": 2}, {"priority": 4}, False),
    # all conditions must hold
    (
        "all hold",
        {"type": "incident", "channel": "email", "category": "network"},
        {"category": "network/vpn"},
        True,
    ),
    (
        "one fails",
        {"type": "incident", "channel": "phone", "category": "network"},
        {"category": "network/vpn"},
        False,
    ),
]


@pytest.mark.parametrize(
    ("when", "fact_kw", "matches"),
    [c[1:] for c in CONDITION_CASES],
    ids=[c[0] for c in CONDITION_CASES],
)
def test_conditions(when: dict[str, Any], fact_kw: dict[str, Any], matches: bool) -> None:
    decision = decide([{"name": "r", "when": when, "then": {"group": "g"}}], facts(**fact_kw))
    assert decision.matched == (("r",) if matches else ())
    if matches:
        assert (decision.group, decision.rule) == ("g", "r")
    else:
        assert decision.rule.startswith("default:")


@pytest.mark.parametrize(
    ("when", "fact_kw", "reason"),
    [
        (
            {"category": "network"},
            {"category": "network/vpn"},
            "category network/vpn under network",
        ),
        ({"channel": ["email"]}, {}, "channel email"),
        ({"title_keywords": ["outage", "down"]}, {"title": "VPN down"}, 'title has "down"'),
        ({"priority_at_least": 2}, {"priority": 1}, "priority 1 (at least as urgent as 2)"),
        (
            {"ci_class": "database", "ci_attribute": {"environment": "prod"}},
            {"cis": (SERVER_TEST, DB_PROD)},
            "affected CI database with environment=prod",
        ),
        ({}, {}, "rule 'r' matched (no conditions)"),
    ],
)
def test_reasons_say_why(when: dict[str, Any], fact_kw: dict[str, Any], reason: str) -> None:
    decision = decide([{"name": "r", "when": when, "then": {"group": "g"}}], facts(**fact_kw))
    assert reason in decision.reasons[0]
    assert "group g" in decision.reasons[0]


# --- actions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("then", "priority", "clamped"),
    [
        # a floor: at least this urgent, the number becomes <= floor
        ({"priority_floor": 2}, 4, 2),
        ({"priority_floor": 2}, 2, 2),
        ({"priority_floor": 2}, 1, 1),
        # a ceiling: at most this urgent, the number becomes >= ceiling
        ({"priority_ceiling": 4}, 2, 4),
        ({"priority_ceiling": 4}, 5, 5),
        ({"priority_floor": 3, "priority_ceiling": 2}, 1, 2),
        ({"priority_floor": 3, "priority_ceiling": 2}, 5, 3),
        ({"priority_floor": 3, "priority_ceiling": 3}, 1, 3),
        ({}, 4, 4),
    ],
)
def test_priority_bounds(then: dict[str, Any], priority: int, clamped: int) -> None:
    decision = decide([{"then": then}], facts())
    assert decision.priority_floor == then.get("priority_floor")
    assert decision.priority_ceiling == then.get("priority_ceiling")
    assert decision.clamp(priority) == clamped


def test_tags_and_custom_fields() -> None:
    decision = decide(
        [{"then": {"group": "noc", "tags": ["vpn", "edge"], "custom_fields": {"site": "zrh"}}}],
        facts(),
    )
    assert decision.tags == ("vpn", "edge")
    assert decision.custom_fields == {"site": "zrh"}
    assert decision.rule == "0"  # a rule without a name is named by its index


def test_first_match_wins() -> None:
    rules = [
        {"name": "incidents", "when": {"type": "incident"}, "then": {"group": "first"}},
        {"name": "email", "when": {"channel": "email"}, "then": {"group": "second", "tags": ["x"]}},
    ]
    decision = decide(rules, facts())
    assert (decision.group, decision.rule, decision.matched, decision.tags) == (
        "first",
        "incidents",
        ("incidents",),
        (),
    )
    swapped = decide(rules[::-1], facts())
    assert (swapped.group, swapped.rule, swapped.tags) == ("second", "email", ("x",))


def test_rules_that_do_not_match_are_skipped_in_order() -> None:
    rules = [
        {"name": "phone", "when": {"channel": "phone"}, "then": {"group": "a"}},
        {"name": "vpn", "when": {"service": "vpn"}, "then": {"group": "b"}},
        {"name": "rest", "then": {"group": "c"}},
    ]
    assert decide(rules, facts(service="vpn")).rule == "vpn"
    assert decide(rules, facts(service="mail")).rule == "rest"


def test_stop_false_accumulates() -> None:
    rules = [
        {
            "name": "vip",
            "when": {"organisation": "acme"},
            "then": {
                "tags": ["vip"],
                "custom_fields": {"callback": True},
                "priority_floor": 3,
                "stop": False,
            },
        },
        {"name": "not-me", "when": {"channel": "phone"}, "then": {"group": "phone"}},
        {
            "name": "vpn",
            "when": {"category": "network/vpn"},
            "then": {
                "group": "noc",
                "priority_floor": 2,
                "tags": ["vpn", "vip"],
                "custom_fields": {"callback": False, "site": "zrh"},
            },
        },
        {"name": "never", "then": {"group": "dba", "tags": ["late"]}},
    ]
    d = decide(rules, facts(organisation="acme", category="network/vpn"))
    assert (d.group, d.rule, d.matched) == ("noc", "vpn", ("vip", "vpn"))
    assert d.tags == ("vip", "vpn")
    assert d.custom_fields == {"callback": True, "site": "zrh"}  # the first to set one keeps it
    assert d.priority_floor == 2
    assert "callback kept" in d.reasons[1]
    # without the vip organisation only the vpn rule runs
    other = decide(rules, facts(organisation="initech", category="network/vpn"))
    assert (other.matched, other.tags) == (("vpn",), ("vpn", "vip"))


def test_stop_false_group_is_kept_by_later_rules() -> None:
    rules = [
        {"name": "a", "then": {"group": "first", "stop": False}},
        {"name": "b", "then": {"group": "second", "tags": ["b"]}},
    ]
    d = decide(rules, facts())
    assert (d.group, d.rule, d.matched, d.tags) == ("first", "a", ("a", "b"), ("b",))
    assert "group second ignored (rule 'a' set first)" in d.reasons[1]


@pytest.mark.parametrize(
    ("first", "second", "floor", "ceiling", "clamp3"),
    [
        ({"priority_floor": 3}, {"priority_floor": 2}, 2, None, 2),  # most urgent floor
        ({"priority_floor": 2}, {"priority_floor": 4}, 2, None, 2),
        ({"priority_ceiling": 2}, {"priority_ceiling": 4}, None, 4, 4),  # least urgent ceiling
        ({"priority_ceiling": 4}, {"priority_ceiling": 2}, None, 4, 4),
        ({"priority_floor": 2}, {"priority_ceiling": 4}, 2, 4, 2),  # disagreeing: floor wins
    ],
)
def test_bounds_of_matched_rules_combine(
    first: dict[str, Any], second: dict[str, Any], floor: int, ceiling: int, clamp3: int
) -> None:
    d = decide([{"then": {**first, "stop": False}}, {"then": second}], facts())
    assert (d.priority_floor, d.priority_ceiling, d.clamp(3)) == (floor, ceiling, clamp3)


def test_disabled_rules_are_skipped() -> None:
    rules = [
        {"name": "off", "enabled": False, "then": {"group": "off"}},
        {"name": "on", "then": {"group": "on"}},
    ]
    d = decide(rules, facts())
    assert (d.group, d.matched) == ("on", ("on",))


def test_a_stopping_rule_without_group_leaves_the_default() -> None:
    rules = [
        {"name": "monitoring", "when": {"channel": "monitoring"}, "then": {"tags": ["auto"]}},
        {"name": "all", "then": {"group": "catch-all"}},
    ]
    d = decide(rules, facts(channel=Channel.MONITORING), service_owner_group="owners")
    assert (d.group, d.rule, d.matched, d.tags) == (
        "owners",
        "default:service_owner",
        ("monitoring",),
        ("auto",),
    )


# --- the default chain ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fact_kw", "kw", "group", "rule"),
    [
        ({"cis": (DB_PROD,)}, {"service_owner_group": "owners"}, "dba", "default:ci_support_group"),
        (
            {"cis": (SERVER_TEST, DB_PROD)},
            {},
            "dba",
            "default:ci_support_group",
        ),  # the first CI that has one
        ({"cis": (DB_PROD,)}, {"ci_support_group": "web"}, "web", "default:ci_support_group"),
        ({}, {"ci_support_group": "web"}, "web", "default:ci_support_group"),
        (
            {"cis": (("server", {"support_group": " "}),)},
            {"service_owner_group": "owners"},
            "owners",
            "default:service_owner",
        ),
        (
            {"cis": (SERVER_TEST,)},
            {"service_owner_group": "owners"},
            "owners",
            "default:service_owner",
        ),
        ({"cis": (SERVER_TEST,)}, {}, "triage", "default:triage"),
        ({}, {"ci_support_group": "", "service_owner_group": ""}, "triage", "default:triage"),
    ],
)
def test_default_chain(fact_kw: dict[str, Any], kw: dict[str, Any], group: str, rule: str) -> None:
    d = decide([{"when": {"channel": "phone"}, "then": {"group": "never"}}], facts(**fact_kw), **kw)
    assert (d.group, d.rule, d.matched) == (group, rule, ())
    assert d.reasons[-1].startswith("no rule set a group") and group in d.reasons[-1]


def test_a_rule_group_beats_the_defaults() -> None:
    d = decide([{"then": {"group": "noc"}}], facts(cis=(DB_PROD,)), service_owner_group="o")
    assert (d.group, d.rule) == ("noc", "0")


# --- building ---------------------------------------------------------------------------------


def rule(name: str = "r", **body: Any) -> dict[str, Any]:
    return {"name": name, **body}


BUILD_ERRORS: list[tuple[Any, str]] = [
    ({"name": "x"}, "routing"),
    (["x"], "routing.0"),
    ([{"name": "a.b"}], "routing.0.name"),
    ([{"name": ""}], "routing.0.name"),
    ([{"name": 3}], "routing.0.name"),
    ([{"if": {}}], "routing.0.if"),
    ([rule("vpn", then={"queue": "x"})], "routing.vpn.then.queue"),
    ([rule(when={"colour": "red"})], "routing.r.when.colour"),
    ([rule(when={"group": "noc"})], "routing.r.when.group"),  # group is an action
    ([rule(when=["type"])], "routing.r.when"),
    ([rule(then="noc")], "routing.r.then"),
    ([rule(when={"type": "problem"})], "routing.r.when.type"),
    ([rule(when={"channel": "fax"})], "routing.r.when.channel"),
    ([rule(when={"channel": []})], "routing.r.when.channel"),
    ([rule(when={"service": 3})], "routing.r.when.service"),
    ([rule(when={"organisation": ["acme", ""]})], "routing.r.when.organisation"),
    ([rule(when={"category": "Network"})], "routing.r.when.category"),
    ([rule(when={"category": ["network", "a//b"]})], "routing.r.when.category"),
    ([rule(when={"ci_class": None})], "routing.r.when.ci_class"),
    ([rule(when={"ci_attribute": "support_group"})], "routing.r.when.ci_attribute"),
    ([rule(when={"ci_attribute": {}})], "routing.r.when.ci_attribute"),
    ([rule(when={"ci_attribute": {"env": {"a": 1}}})], "routing.r.when.ci_attribute.env"),
    ([rule(when={"ci_attribute": {"env": []}})], "routing.r.when.ci_attribute"),
    ([rule(when={"title_keywords": [" "]})], "routing.r.when.title_keywords"),
    ([rule(when={"priority_at_least": 0})], "routing.r.when.priority_at_least"),
    ([rule(when={"priority_at_most": "high"})], "routing.r.when.priority_at_most"),
    ([rule(when={"priority_at_most": True})], "routing.r.when.priority_at_most"),
    (
        [rule(when={"priority_at_least": 2, "priority_at_most": 3})],
        "routing.r.when.priority_at_most",
    ),
    ([rule(then={"group": "no c"})], "routing.r.then.group"),
    ([rule(then={"priority_floor": 6})], "routing.r.then.priority_floor"),
    ([rule(then={"priority_ceiling": 0})], "routing.r.then.priority_ceiling"),
    (
        [rule(then={"priority_floor": 2, "priority_ceiling": 3})],
        "routing.r.then.priority_ceiling",
    ),
    ([rule(then={"tags": [""]})], "routing.r.then.tags"),
    ([rule(then={"tags": {"a": 1}})], "routing.r.then.tags"),
    ([rule(then={"custom_fields": ["x"]})], "routing.r.then.custom_fields"),
    ([rule(then={"stop": "no"})], "routing.r.then.stop"),
    ([rule(enabled="yes")], "routing.r.enabled"),
    ([rule(description=1)], "routing.r.description"),
    ([rule("a"), rule("a")], "routing.a.name"),
    ([{"then": {}}, {"name": "0"}], "routing.0.name"),  # a name may not take an index's
]


@pytest.mark.parametrize(("data", "field"), BUILD_ERRORS)
def test_build_names_the_bad_key(data: Any, field: str) -> None:
    with pytest.raises((ValidationFailed, ValidationErrors)) as info:
        RoutingRules.build(data)
    err = info.value
    errors = err.errors if isinstance(err, ValidationErrors) else [err]
    assert [e.field for e in errors] == [field]


def test_build_lists_every_bad_rule() -> None:
    with pytest.raises(ValidationErrors) as info:
        RoutingRules.build([rule("a", when={"x": 1}), rule("ok"), rule("b", then={"y": 2})])
    assert [e.field for e in info.value.errors] == ["routing.a.when.x", "routing.b.then.y"]


def test_build_checks_groups_when_given() -> None:
    with pytest.raises(ValidationErrors) as info:
        RoutingRules.build([rule(then={"group": "ghost"})], groups={"noc"})
    assert [e.field for e in info.value.errors] == ["routing.r.then.group"]
    assert RoutingRules.build([rule(then={"group": "noc"})], groups={"noc"}).rules[0].then.group


def test_build_empty() -> None:
    assert RoutingRules.build(None).rules == ()
    assert RoutingRules.build([]).rules == ()


def test_yaml_rules_end_to_end() -> None:
    rules = RoutingRules.build(
        yaml.safe_load(
            """
            - name: vip
              when: {organisation: acme}
              then: {tags: [vip], stop: false}
            - name: prod databases
              description: the DBAs own every production database
              when:
                ci_class: database
                ci_attribute: {environment: [prod, dr]}
              then: {group: dba, priority_floor: 2}
            - name: vpn
              when: {category: network/vpn, channel: [email, portal]}
              then: {group: noc}
            """
        )
    )
    d = route(
        facts(organisation="acme", category="network/vpn", cis=(SERVER_TEST, DB_PROD)),
        rules,
        triage_group="triage",
    )
    assert (d.group, d.rule, d.matched, d.tags, d.clamp(4)) == (
        "dba",
        "prod databases",
        ("vip", "prod databases"),
        ("vip",),
        2,
    )
