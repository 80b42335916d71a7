"""Settings, from environment variables (``SERVICEGRAPH_*``) and an optional YAML file.

Precedence, strongest first: environment variables, the YAML file named by
``SERVICEGRAPH_CONFIG``, defaults. Nested values in the environment use ``__``, e.g.
``SERVICEGRAPH_PRECEDENCE__OWNER='["erp","manual"]'``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from servicegraph.access.redaction import redact_uri
from servicegraph.cmdb.errors import ValidationErrors, ValidationFailed
from servicegraph.cmdb.identifiers import DEFAULT_MATCH_ORDER
from servicegraph.cmdb.precedence import DEFAULT_PRECEDENCE
from servicegraph.collectors.erp.settings import ErpSettings
from servicegraph.collectors.snmp.settings import SnmpSettings
from servicegraph.correlation.policy import CorrelationPolicy, ExpectedAlerts
from servicegraph.delivery.settings import NotificationSettings
from servicegraph.ticketing.change_config import ChangePolicy
from servicegraph.ticketing.fields import CustomFieldSchema
from servicegraph.ticketing.lifecycle import TicketStatus
from servicegraph.ticketing.lifecycle import load as load_lifecycle
from servicegraph.ticketing.people import check_key
from servicegraph.ticketing.priority import DEFAULT_PRIORITY_MATRIX, PriorityMatrix
from servicegraph.ticketing.routing import RoutingRules
from servicegraph.ticketing.sla_config import SlaConfig
from servicegraph.ticketing.tickets_policy import (
    DEFAULT_AUTO_CLOSE_DAYS,
    DEFAULT_REOPEN_WINDOW_DAYS,
    DEFAULT_TRIAGE_GROUP,
    DeskPolicy,
)

CONFIG_ENV = "SERVICEGRAPH_CONFIG"
_T = TypeVar("_T")
NEO4J_SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")


class CorrelationSettings(BaseModel):
    """How events become incidents (see servicegraph.correlation.correlator)."""

    model_config = ConfigDict(extra="forbid")

    group_window_s: float = Field(default=300, gt=0)
    topology_depth: int = Field(default=4, ge=1, le=32)
    inferred_min_share: float = Field(default=0.5, gt=0, le=1)
    hold_time_s: float = Field(default=60, ge=0)
    reopen_window_s: float = Field(default=1800, ge=0)
    flap_threshold: int = Field(default=4, ge=2)
    flap_window_s: float = Field(default=600, gt=0)
    problem_incidents_per_ci: int = Field(default=3, ge=2)
    problem_recurring_cis: int = Field(default=3, ge=2)
    problem_window_s: float = Field(default=7 * 86400, gt=0)
    max_clock_skew_s: float = Field(
        default=300,
        ge=0,
        description="An event dated further ahead of its reception is dated at the "
        "reception (the source's time kept as the alert's reported_at).",
    )
    batch_size: int = Field(
        default=5000,
        ge=1,
        description="Most events one correlation transaction takes from the inbox; under a "
        "backlog bigger batches update each busy incident once for more events.",
    )
    poll_interval_s: float = Field(
        default=0.05, gt=0, description="How often the in-process worker looks at the inbox."
    )
    priority_matrix: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRIORITY_MATRIX.items()}
    )
    high_impact_criticality: int = Field(default=2, ge=1, le=5)
    expected_alerts: ExpectedAlerts = Field(
        default=ExpectedAlerts.SUPPRESS,
        description="An alert on a CI under a change being implemented (or inside a "
        "scheduled change's window), or on a CI that hard-depends on one, is expected: "
        "'suppress' opens no incident and links the alert to the change; 'low_priority' "
        "opens a P5 incident tagged expected-change, linked to the change.",
    )
    after_change_window_s: float = Field(
        default=7200,
        ge=0,
        description="An incident opened within this long after a change ended, whose root "
        "cause is one of the change's CIs or hard-depends on one, is marked possibly "
        "caused by the change (a caused_by_change link, the reason in its history).",
    )

    @field_validator("priority_matrix")
    @classmethod
    def _full_matrix(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        return _matrix(value, "correlation.priority_matrix")

    def policy(self) -> CorrelationPolicy:
        return CorrelationPolicy(
            group_window=dt.timedelta(seconds=self.group_window_s),
            topology_depth=self.topology_depth,
            inferred_min_share=self.inferred_min_share,
            hold_time=dt.timedelta(seconds=self.hold_time_s),
            reopen_window=dt.timedelta(seconds=self.reopen_window_s),
            flap_threshold=self.flap_threshold,
            flap_window=dt.timedelta(seconds=self.flap_window_s),
            problem_incidents_per_ci=self.problem_incidents_per_ci,
            problem_recurring_cis=self.problem_recurring_cis,
            problem_window=dt.timedelta(seconds=self.problem_window_s),
            batch_size=self.batch_size,
            max_clock_skew=dt.timedelta(seconds=self.max_clock_skew_s),
            priority_matrix=self.priority_matrix,
            high_impact_criticality=self.high_impact_criticality,
            expected_alerts=self.expected_alerts,
            after_change_window=dt.timedelta(seconds=self.after_change_window_s),
        )


def _matrix(value: dict[str, dict[str, int]], path: str) -> dict[str, dict[str, int]]:
    """The matrix checked whole by ``ticketing.priority`` (nine cells 1..5, monotone)."""
    return _domain(lambda: PriorityMatrix.build(value, path=path).as_dict())


def _domain(build: Callable[[], _T], prefix: str = "") -> _T:
    """``build()``, a domain check's refusal turned into the ValueError pydantic reports
    (with the field path the domain named, after ``prefix``)."""
    try:
        return build()
    except ValidationErrors as exc:
        raise ValueError("; ".join(_said(e, prefix) for e in exc.errors)) from None
    except ValidationFailed as exc:
        raise ValueError(_said(exc, prefix)) from None


def _said(exc: ValidationFailed, prefix: str) -> str:
    field = f"{prefix}{exc.field}" if exc.field else None
    where = ": ".join(part for part in (exc.item, field) if part)
    return f"{where}: {exc.reason}" if where else exc.reason


class DeskSettings(BaseModel):
    """The service desk (see servicegraph.ticketing.tickets): its lifecycle, routing rules,
    custom fields, priority matrix (shared with correlation), triage group, automatic
    assignment and closing. Each part is checked whole at start-up, naming its path."""

    model_config = ConfigDict(extra="forbid")

    lifecycle: dict[str, Any] | None = Field(
        default=None,
        description="The ticket lifecycle (ticketing/lifecycle.py format); unset: the built-in "
        "new -> assigned -> in_progress -> pending -> resolved -> closed, cancelled, reopen.",
    )
    routing: list[dict[str, Any]] = Field(
        default_factory=list, description="Routing rules, in order (ticketing/routing.py format)."
    )
    custom_fields: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Custom fields per ticket type or category:<path> (ticketing/fields.py).",
    )
    priority_matrix: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRIORITY_MATRIX.items()},
        description="impact -> urgency -> priority (1 highest), for tickets and correlation.",
    )
    triage_group: str = Field(
        default=DEFAULT_TRIAGE_GROUP, description="Where tickets go that nothing else routes."
    )
    auto_assign: bool = Field(
        default=False, description="Give new tickets to the group's least-loaded agent."
    )
    auto_close_days: int | None = Field(
        default=DEFAULT_AUTO_CLOSE_DAYS,
        ge=0,
        description="Resolved tickets not reopened for this long are closed (null: never).",
    )
    reopen_window_days: float = Field(
        default=DEFAULT_REOPEN_WINDOW_DAYS,
        ge=0,
        description="How long after resolution people may reopen a ticket.",
    )
    calendars: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Business calendars by name (ticketing/calendar.py format); '24x7' is "
        "built in.",
    )
    sla: dict[str, Any] = Field(
        default_factory=dict,
        description="SLA policies with their escalation levels, and the policy of each "
        "business service sla_tier (ticketing/sla_config.py format). No policy: no clocks.",
    )
    changes: dict[str, Any] = Field(
        default_factory=dict,
        description="Change management: CAB approvals by risk, emergency approvals, "
        "standard-change templates, lifecycles (ticketing/change_config.py format).",
    )

    @field_validator("lifecycle")
    @classmethod
    def _lifecycle(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        machine = _domain(lambda: load_lifecycle(value, path="desk.lifecycle"))
        known = {s.value for s in TicketStatus}
        for state in machine.states:
            if state not in known:
                raise ValueError(
                    f"desk.lifecycle.states.{state}: tickets have the statuses "
                    f"{', '.join(sorted(known))}; a lifecycle names some of them"
                )
        return value

    @field_validator("routing")
    @classmethod
    def _routing(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _domain(lambda: RoutingRules.build(value), prefix="desk.")
        return value

    @field_validator("custom_fields")
    @classmethod
    def _custom_fields(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _domain(lambda: CustomFieldSchema.build(value, path="desk.custom_fields"))
        return value

    @field_validator("priority_matrix")
    @classmethod
    def _priority_matrix(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        return _matrix(value, "desk.priority_matrix")

    @model_validator(mode="after")
    def _sla(self) -> DeskSettings:
        _domain(lambda: SlaConfig.build(self.calendars, self.sla))
        return self

    @field_validator("changes")
    @classmethod
    def _changes(cls, value: dict[str, Any]) -> dict[str, Any]:
        _domain(lambda: ChangePolicy.build(value, path="desk.changes"))
        return value

    @field_validator("triage_group")
    @classmethod
    def _triage_group(cls, value: str) -> str:
        return _domain(lambda: check_key(value, "desk.triage_group"))

    def policy(self) -> DeskPolicy:
        return DeskPolicy(
            lifecycle=load_lifecycle(self.lifecycle, path="desk.lifecycle"),
            routing=RoutingRules.build(self.routing),
            custom_fields=CustomFieldSchema.build(self.custom_fields, path="desk.custom_fields"),
            priority_matrix=PriorityMatrix.build(self.priority_matrix, path="desk.priority_matrix"),
            triage_group=self.triage_group,
            auto_assign=self.auto_assign,
            auto_close_days=self.auto_close_days,
            reopen_window=dt.timedelta(days=self.reopen_window_days),
            sla=SlaConfig.build(self.calendars, self.sla),
            changes=ChangePolicy.build(self.changes, path="desk.changes"),
        )


class GraphQLSettings(BaseModel):
    """Limits of the GraphQL API at /graphql (see servicegraph.graphql)."""

    model_config = ConfigDict(extra="forbid")

    max_depth: int = Field(default=12, ge=2, le=100, description="Deepest selection allowed.")
    max_complexity: int = Field(
        default=20_000,
        ge=10,
        description="Estimated fields resolved: each field 1, lists times their page size.",
    )
    max_aliases: int = Field(default=30, ge=1)
    subscription_poll_s: float = Field(
        default=0.5, gt=0, description="How often subscriptions look for changed incidents."
    )
    graphiql: bool = Field(default=True, description="Serve GraphiQL on GET /graphql.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SERVICEGRAPH_",
        env_nested_delimiter="__",
        extra="forbid",
        # an invalid value must not be echoed: it may be a password or a token
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(
        default=Path("data"), description="Where the embedded store and job state live."
    )
    store: Literal["sqlite", "neo4j"] = "sqlite"
    sqlite_path: Path | None = Field(
        default=None, description="The SQLite file; default DATA_DIR/servicegraph.sqlite3."
    )
    sqlite_lock_timeout: float = Field(
        default=120.0, gt=0, description="Seconds a writer waits for another before failing."
    )
    neo4j_uri: str = Field(
        default="neo4j://localhost:7687",
        description="neo4j://host:7687 (a server or a cluster) or neo4j+s://host (TLS, Aura).",
    )
    neo4j_user: str = Field(default="neo4j", description="Empty when auth is disabled.")
    neo4j_password: SecretStr = SecretStr("")
    neo4j_database: str = "neo4j"
    # 5,000: a 100k-CI import in 20,000-record units took 104.7 s at 1,000 rows a
    # statement, 89 s at 5,000 and 83-87 s at 20,000 (benchmarks/README.md)
    neo4j_batch_size: int = Field(
        default=5000, ge=1, le=100_000, description="Rows per UNWIND statement."
    )
    neo4j_connect_timeout: float = Field(default=10.0, gt=0)
    neo4j_change_poll_s: float = Field(
        default=0.1,
        ge=0,
        le=60,
        description="Seconds another host's graph change may take to reach this host's "
        "impact projection (0: ask Neo4j before every query).",
    )
    neo4j_max_retry_time: float = Field(
        default=15.0, ge=0, description="Seconds reads retry transient errors and failovers."
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes of `serve`: webhooks and queries spread over more cores.",
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body of /graphql and every endpoint but ingestion (413).",
    )
    ingest_max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest body of an ingestion POST (413): 10,000 generic events are 5 MB.",
    )
    health_max_lag_s: float = Field(
        default=120,
        gt=0,
        description="/healthz answers 503 when the oldest event waiting for correlation is "
        "older than this.",
    )
    # FastAPI's own OpenTelemetry spans and metrics (with an OpenTelemetry SDK configured);
    # off, requests skip the check, which costs about 5% of a webhook's CPU
    opentelemetry: bool = False

    stale_after_runs: int = Field(
        default=3, ge=1, description="Complete runs a source may miss before an item is stale."
    )
    impact_max_depth: int = Field(default=32, ge=1, le=1000)
    identifier_match_order: list[str] = Field(default_factory=lambda: list(DEFAULT_MATCH_ORDER))
    precedence: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_PRECEDENCE.items()}
    )
    classes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    relationship_rules: dict[str, list[list[str]]] = Field(default_factory=dict)

    correlation: CorrelationSettings = Field(default_factory=CorrelationSettings)
    desk: DeskSettings = Field(default_factory=DeskSettings)
    graphql: GraphQLSettings = Field(default_factory=GraphQLSettings)
    # mail and webhooks about tickets (servicegraph/delivery/settings.py); none by default
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    # SNMP discovery, polling and the trap receiver: targets, credentials, timeouts
    snmp: SnmpSettings = Field(default_factory=SnmpSettings)
    # asset sync with an ERP: its feeds, write-back and reports (collectors/erp)
    erp: ErpSettings = Field(default_factory=ErpSettings)
    # source name -> bearer token that source's webhook must present
    ingest_tokens: dict[str, str] = Field(default_factory=dict)
    # run the correlation worker inside `serve` (off when separate workers run it)
    embedded_worker: bool = True
    # ... in a child process instead of a thread: correlation then has a core of its own
    # and does not slow the API down during an alert storm, at the cost of a second copy
    # of the topology. Unset: a child process when `serve` runs on more than one CPU, a
    # thread otherwise and in apps made with `create_app` (tests, embedding)
    embedded_worker_process: bool | None = None

    # Background jobs: with a broker (redis://...), Celery workers run them; without one,
    # `serve` runs them in-process.
    broker_url: str | None = Field(default=None, description="e.g. redis://127.0.0.1:6379/0")
    broker_visibility_timeout_s: float = Field(
        default=300,
        gt=0,
        description="A task unacknowledged this long (its worker died) is delivered again.",
    )
    schedule: dict[str, float] = Field(
        default_factory=lambda: {
            "correlate": 1.0,
            "housekeeping": 3600.0,
            "stale_cleanup": 3600.0,
            "auto_close": 3600.0,
            "sla_escalation": 30.0,  # clocks reaching an escalation level
        },
        description="Periodic jobs: job name -> interval in seconds (0 disables).",
    )
    inbox_retention_days: float = Field(default=7, gt=0)
    stale_after_days: float = Field(
        default=30, gt=0, description="Items no source reported for this long become stale."
    )

    @model_validator(mode="after")
    def _notifications_job(self) -> Settings:
        """With a notification channel, the sender job runs every ``send_interval_s``
        unless the schedule names it (0 there: the sender runs elsewhere, e.g. the CLI)."""
        if self.notifications.active:
            self.schedule.setdefault("notifications", self.notifications.send_interval_s)
        return self

    @model_validator(mode="after")
    def _one_priority_matrix(self) -> Settings:
        """The desk and correlation share one matrix: set in either place, it is both's."""
        desk = "priority_matrix" in self.desk.model_fields_set
        correlation = "priority_matrix" in self.correlation.model_fields_set
        if desk and correlation and self.desk.priority_matrix != self.correlation.priority_matrix:
            raise ValueError(
                "desk.priority_matrix and correlation.priority_matrix differ: tickets and "
                "correlation share one matrix; set desk.priority_matrix only"
            )
        if desk:
            self.correlation.priority_matrix = {
                k: dict(v) for k, v in self.desk.priority_matrix.items()
            }
        elif correlation:
            self.desk.priority_matrix = {
                k: dict(v) for k, v in self.correlation.priority_matrix.items()
            }
        return self

    @field_validator("neo4j_uri")
    @classmethod
    def _neo4j_uri(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or not rest or scheme not in NEO4J_SCHEMES:
            raise ValueError(
                f"'{redact_uri(value)}' is not a Neo4j URI; use neo4j://host:7687 or "
                f"neo4j+s://host (schemes: {', '.join(NEO4J_SCHEMES)})"
            )
        return value

    @field_validator("data_dir", "sqlite_path")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def sqlite_file(self) -> Path:
        return self.sqlite_path or self.data_dir / "servicegraph.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            path = Path(config_file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_ENV} names {path}, which is not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)
