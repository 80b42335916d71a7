"""The one place where concrete adapters are chosen and services wired together.

Entry points (CLI, API, workers) call ``bootstrap`` once with their settings; nothing is
connected at import time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from servicegraph.access.ports import TokenStore
from servicegraph.access.service import TokenService
from servicegraph.cmdb.catalog import CatalogService
from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import StoreUnavailable
from servicegraph.cmdb.history import HistoryService
from servicegraph.cmdb.identifiers import IdentifierRules
from servicegraph.cmdb.impact import ImpactService
from servicegraph.cmdb.ports import GraphStore
from servicegraph.cmdb.precedence import SourcePrecedence
from servicegraph.cmdb.reconciliation import Reconciler
from servicegraph.cmdb.relationships import RelationshipRules
from servicegraph.collectors.erp.reports import AssetReports
from servicegraph.collectors.erp.sync import ErpSync
from servicegraph.collectors.erp.writeback import ErpWriteBack
from servicegraph.collectors.snmp.state import PollStateStore
from servicegraph.config import Settings
from servicegraph.correlation.correlator import Correlator
from servicegraph.correlation.diagnosis import DiagnosisService
from servicegraph.correlation.mapping import CIMapper
from servicegraph.correlation.ports import EventInbox
from servicegraph.delivery.sender import OutboxSender
from servicegraph.delivery.settings import NotificationSettings
from servicegraph.ticketing.desk import ServiceDesk
from servicegraph.ticketing.desk_directory import DeskDirectory
from servicegraph.ticketing.history_import import HistoryImport
from servicegraph.ticketing.notifications import Notifier
from servicegraph.ticketing.outbox import OutboxChannel, OutboxStore
from servicegraph.ticketing.ports import DirectoryStore, TicketStore
from servicegraph.ticketing.report_ports import ReportStore
from servicegraph.ticketing.sla_projection import SlaProjector

if TYPE_CHECKING:
    from servicegraph.storage.neo4j.leases import Neo4jLeases


@dataclass
class Services:
    settings: Settings
    store: GraphStore
    classes: ClassRegistry
    relationship_rules: RelationshipRules
    reconciler: Reconciler
    history: HistoryService
    impact: ImpactService
    inbox: EventInbox  # monitoring events waiting for correlation
    tickets: TicketStore  # incidents, their alerts, problems, changes, worklog
    correlator: Correlator
    catalog: CatalogService
    desk: ServiceDesk
    diagnosis: DiagnosisService  # root causes of incidents, from correlation's analysis
    tokens: TokenService
    poll_state: PollStateStore  # the SNMP poller's last samples, shared by every worker
    directory: DeskDirectory  # the desk's people and service catalogue (cached per version)
    ticket_history: HistoryImport  # another tool's ticket history (import-tickets)
    # notifications: the outbox, what fills it (None: no channel configured, nothing is
    # enqueued) and the sender job that empties it (servicegraph.delivery)
    outbox: OutboxStore
    erp_sync: ErpSync  # asset feeds from the ERP (settings erp.sources)
    erp_write_back: ErpWriteBack  # what the CMDB knows better, back to the ERP
    erp_reports: AssetReports  # ghost assets, unregistered devices, mismatches
    notifier: Notifier | None = None
    sender: OutboxSender | None = None

    def close(self) -> None:
        self.inbox.close()
        self.store.close()


def open_store(settings: Settings, *, read_only: bool = False) -> GraphStore:
    """The configured graph store; ``read_only`` opens an embedded file read-only (Neo4j
    has no local file to spare)."""
    if settings.store == "sqlite":
        from servicegraph.storage.sqlite import SqliteGraphStore

        return SqliteGraphStore(
            settings.sqlite_file, lock_timeout=settings.sqlite_lock_timeout, read_only=read_only
        )
    if settings.store == "neo4j":
        from servicegraph.storage.neo4j import Neo4jGraphStore

        return Neo4jGraphStore(
            settings.neo4j_uri,
            user=settings.neo4j_user,
            password=settings.neo4j_password.get_secret_value(),
            database=settings.neo4j_database,
            batch_size=settings.neo4j_batch_size,
            connect_timeout=settings.neo4j_connect_timeout,
            max_retry_time=settings.neo4j_max_retry_time,
            change_poll_interval=settings.neo4j_change_poll_s,
        )
    raise StoreUnavailable(
        f"store backend '{settings.store}' is not available in this release; "
        "set SERVICEGRAPH_STORE=sqlite or neo4j"
    )


def open_inbox(store: GraphStore) -> EventInbox:
    """The durable inbox, where the graph is: the graph's file (SQLite, opened read-only
    when the store is), or the graph's Neo4j database, shared by every host
    (``storage/neo4j/event_inbox.py`` says why there). The store's migration creates the
    desk's schema in Neo4j too."""
    from servicegraph.storage.neo4j import Neo4jGraphStore
    from servicegraph.storage.sqlite import SqliteGraphStore

    if isinstance(store, SqliteGraphStore):
        from servicegraph.storage.sqlite.event_inbox import SqliteEventInbox

        return SqliteEventInbox(store)
    if isinstance(store, Neo4jGraphStore):
        from servicegraph.storage.neo4j.event_inbox import Neo4jEventInbox

        return Neo4jEventInbox(store)
    raise StoreUnavailable(f"no inbox adapter for {type(store).__name__}")


def _desk_home(inbox: EventInbox) -> tuple[str, Any]:
    """Where the desk's records live: the SQLite file or the Neo4j store of the inbox."""
    from servicegraph.storage.sqlite.event_inbox import SqliteEventInbox

    if isinstance(inbox, SqliteEventInbox):
        return "sqlite", inbox.file
    from servicegraph.storage.neo4j.event_inbox import Neo4jEventInbox

    if isinstance(inbox, Neo4jEventInbox):
        return "neo4j", inbox.graph
    raise StoreUnavailable(f"the desk's records have no adapter beside {type(inbox).__name__}")


def open_ticket_stores(
    inbox: EventInbox,
) -> tuple[TicketStore, TokenStore, PollStateStore]:
    """Tickets, API tokens and the SNMP poll state live where the inbox's cursor does (the
    graph's file, or the graph's Neo4j database)."""
    kind, home = _desk_home(inbox)
    if kind == "neo4j":
        from servicegraph.storage.neo4j.poll_state import Neo4jPollStateStore
        from servicegraph.storage.neo4j.tickets import Neo4jTicketStore
        from servicegraph.storage.neo4j.tokens import Neo4jTokenStore

        return Neo4jTicketStore(home), Neo4jTokenStore(home), Neo4jPollStateStore(home)
    from servicegraph.storage.sqlite.poll_state import SqlitePollState
    from servicegraph.storage.sqlite.tickets import SqliteTicketStore
    from servicegraph.storage.sqlite.tokens import SqliteTokenStore

    return SqliteTicketStore(home), SqliteTokenStore(home), SqlitePollState(home)


def open_directory_store(inbox: EventInbox) -> DirectoryStore:
    """People and the service catalogue live where tickets do."""
    kind, home = _desk_home(inbox)
    if kind == "neo4j":
        from servicegraph.storage.neo4j.directory import Neo4jDirectoryStore

        return Neo4jDirectoryStore(home)
    from servicegraph.storage.sqlite.directory import SqliteDirectoryStore

    return SqliteDirectoryStore(home)


def open_report_store(inbox: EventInbox) -> ReportStore:
    """The desk's reports read where tickets and their SLA clocks are."""
    kind, home = _desk_home(inbox)
    if kind == "neo4j":
        from servicegraph.storage.neo4j.reports import Neo4jReportStore

        return Neo4jReportStore(home)
    from servicegraph.storage.sqlite.reports import SqliteReportStore

    return SqliteReportStore(home)


def open_outbox(inbox: EventInbox) -> OutboxStore:
    """The notification outbox lives where tickets do (their units fill it)."""
    kind, home = _desk_home(inbox)
    if kind == "neo4j":
        from servicegraph.storage.neo4j.outbox import Neo4jOutboxStore

        return Neo4jOutboxStore(home)
    from servicegraph.storage.sqlite.outbox import SqliteOutboxStore

    return SqliteOutboxStore(home)


def open_leases(store: GraphStore) -> Neo4jLeases:
    """Leases shared by every host (the leader of the background jobs): Neo4j only; an
    embedded store is one host's, whose processes elect with a lock file."""
    from servicegraph.storage.neo4j import Neo4jGraphStore
    from servicegraph.storage.neo4j.leases import Neo4jLeases

    if not isinstance(store, Neo4jGraphStore):
        raise StoreUnavailable("leases shared across hosts need the Neo4j store")
    return Neo4jLeases(store)


def open_sender(settings: NotificationSettings, outbox: OutboxStore) -> OutboxSender | None:
    """The sender job over the configured channels; None when there is none."""
    from servicegraph.delivery.channel import Transport
    from servicegraph.delivery.smtp import SmtpOptions, SmtpTransport
    from servicegraph.delivery.webhook import WebhookEndpoint, WebhookTransport

    transports: dict[OutboxChannel, Transport] = {}
    if (smtp := settings.smtp) is not None:
        password = smtp.password.get_secret_value() if smtp.password is not None else None
        options = SmtpOptions(
            host=smtp.host, port=smtp.effective_port, sender=smtp.sender, security=smtp.security,
            username=smtp.username, password=password, timeout_s=smtp.timeout_s,
            ca_file=smtp.ca_file, verify=smtp.verify,
        )  # fmt: skip
        transports[OutboxChannel.EMAIL] = SmtpTransport(options)
    if settings.webhooks:
        endpoints = {
            w.name: WebhookEndpoint(
                w.name, w.url, w.secret.get_secret_value().encode(), timeout_s=w.timeout_s
            )
            for w in settings.webhooks
        }
        transports[OutboxChannel.WEBHOOK] = WebhookTransport(endpoints)
    if not transports:
        return None
    return OutboxSender(
        outbox,
        transports,
        retry=settings.retry_policy(),
        batch_size=settings.batch_size,
        lease=dt.timedelta(seconds=settings.lease_s),
        sent_retention=dt.timedelta(days=settings.sent_retention_days),
    )


def open_notifier(settings: Settings, directory: DeskDirectory) -> Notifier | None:
    """The desk's notifier, or None: ticket units enqueue messages only when a channel
    (mail or a webhook) is configured."""
    policy = settings.notifications.policy()
    if policy is None or not policy.active:
        return None
    return Notifier(policy, directory.directory)


def bootstrap(
    settings: Settings | None = None, *, migrate: bool = True, read_only: bool = False
) -> Services:
    """The wired services. ``read_only``, for entry points that only read: the embedded
    files are opened read-only, so a data directory the user may not write serves too;
    a missing or outdated schema is still created or upgraded (that needs write access)."""
    settings = settings or Settings()
    classes = ClassRegistry.build(settings.classes)
    rules = RelationshipRules.build(classes, settings.relationship_rules)
    store = open_store(settings, read_only=read_only)
    if migrate:
        store.migrate()
    identifier_rules = IdentifierRules(settings.identifier_match_order)
    impact = ImpactService(store, classes, rules, max_depth=settings.impact_max_depth)
    inbox = open_inbox(store)
    tickets, tokens, poll_state = open_ticket_stores(inbox)
    erp_sources = settings.erp.built_sources()
    precedence = SourcePrecedence(settings.precedence)
    for erp_source in erp_sources.values():  # what a feed owns, every source respects
        precedence = precedence.with_owner(erp_source.source_name, erp_source.owns)
    reconciler = Reconciler(
        store,
        classes,
        rules,
        identifier_rules,
        precedence,
        stale_after_runs=settings.stale_after_runs,
    )
    erp_sync = ErpSync(reconciler, erp_sources)
    history = HistoryService(store)
    catalog = CatalogService(store, classes, identifier_rules, reconciler)
    directory = DeskDirectory(open_directory_store(inbox), store, resolve_ci=catalog.resolve)
    desk_policy = settings.desk.policy()
    # the stores keep every saved ticket's SLA clocks (ticketing/sla_projection.py)
    sla = SlaProjector(desk_policy.sla)
    tickets.keep_sla(sla)
    inbox.keep_sla(sla)
    notifier = open_notifier(settings, directory)
    outbox = open_outbox(inbox)
    desk = ServiceDesk.build(
        tickets,
        store,
        history,
        directory=directory.directory,
        catalogue=directory.catalogue,
        policy=desk_policy,
        notifier=notifier,
        sla=sla,
        reports=open_report_store(inbox),
        impact=impact,  # changes' risk and conflicts come from the graph
    )
    correlator = Correlator(
        inbox,
        tickets,
        store,
        impact,
        CIMapper(store, identifier_rules, impact),
        settings.correlation.policy(),
        lifecycle=desk_policy.lifecycle,  # one state machine for people and correlation
        router=desk.tickets.router,  # monitoring incidents routed as people's tickets are
        notifier=notifier if settings.notifications.monitoring else None,
    )
    return Services(
        settings=settings,
        store=store,
        classes=classes,
        relationship_rules=rules,
        reconciler=reconciler,
        history=history,
        impact=impact,
        inbox=inbox,
        tickets=tickets,
        correlator=correlator,
        catalog=catalog,
        desk=desk,
        diagnosis=DiagnosisService(tickets, correlator),
        tokens=TokenService(tokens, agents=directory),
        poll_state=poll_state,
        directory=directory,
        ticket_history=HistoryImport(tickets, directory.store),
        outbox=outbox,
        erp_sync=erp_sync,
        erp_write_back=ErpWriteBack(store, erp_sources),
        erp_reports=AssetReports(
            store,
            classes,
            erp_sync,
            discoverable=settings.erp.discoverable_classes,
            ghost_after=dt.timedelta(days=settings.erp.ghost_after_days),
        ),
        notifier=notifier,
        sender=open_sender(settings.notifications, outbox),
    )
