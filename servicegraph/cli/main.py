"""The ``servicegraph`` command line: the Typer app and its commands, one module per domain.

Every command bootstraps the services from settings (environment, ``SERVICEGRAPH_CONFIG``),
does one job and exits non-zero with one clear line when it cannot. ``--json`` gives
output for scripts.

The commands are registered here, in the order ``--help`` lists them:

- ``cli/runtime.py``: serve, worker, beat (running servicegraph);
- ``cli/cmdb.py``: migrate, import, export, show, history, as-of, merge, conflicts, stats;
- ``cli/impact.py``: impact, spof, deps;
- ``cli/monitoring.py``: incidents, problems, problem-candidates, unmapped, inbox, correlate;
- ``cli/snmp.py``: discover, poll, traps;
- ``cli/erp.py``: erp sources|sync|write-back|report (asset sync with an ERP);
- ``cli/graphql.py``: graphql-schema; ``cli/tokens.py``: token create|list|revoke;
- ``cli/people.py``: people import|list, catalogue import|show;
- ``cli/notifications.py``: notifications send|status|dead|retry;
- ``cli/tickets.py``: ticket create|show|list|assign|transition|comment;
- ``cli/problems.py``: problem list|show|create|update|transition|known-error|
  link-incident|link-change;
- ``cli/changes.py``: change list|show|create|update|step|approve|reject|override|task-add|
  task-update|calendar|risk|freeze-add|freeze-list|freeze-remove;
- ``cli/history.py``: import-tickets (another tool's ticket history);
- ``cli/reports.py``: report (MTTA, MTTR, SLA compliance, backlog, volumes ...).

What they share (consoles, exit codes, options, opening the services, JSON output) is in
``cli/common.py``.
"""

from __future__ import annotations

import typer

from servicegraph.cli import cmdb, graphql, history, impact, monitoring, runtime, snmp, tokens
from servicegraph.cli import erp as erp_cli
from servicegraph.cli import people as people_cli
from servicegraph.cli import reports as reports_cli
from servicegraph.cli.changes import change_app
from servicegraph.cli.notifications import notifications_app
from servicegraph.cli.problems import problem_app
from servicegraph.cli.tickets import ticket_app

app = typer.Typer(
    name="servicegraph",
    help="Open graph CMDB and monitoring integration for IT service desks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command()(runtime.serve)
app.command()(cmdb.migrate)
app.command("import")(cmdb.import_)
app.command()(cmdb.export)
app.command()(impact.impact)
app.command()(impact.spof)
app.command()(impact.deps)
app.command()(cmdb.show)
app.command()(cmdb.history)
app.command("as-of")(cmdb.as_of)
app.command()(cmdb.merge)
app.command()(cmdb.conflicts)
app.command()(cmdb.stats)
app.command()(monitoring.incidents)
app.command()(monitoring.problems)
app.command("problem-candidates")(monitoring.problem_candidates)
app.command()(monitoring.unmapped)
app.command()(monitoring.inbox)
app.command()(monitoring.correlate)
app.command()(runtime.worker)
app.command()(runtime.beat)
app.command()(snmp.discover)
app.command()(snmp.poll)
app.command()(snmp.traps)
app.command("graphql-schema")(graphql.graphql_schema)
app.add_typer(tokens.token_app, name="token")
app.add_typer(ticket_app, name="ticket")
app.add_typer(problem_app, name="problem")
app.add_typer(change_app, name="change")
app.command("import-tickets")(history.import_tickets)
app.add_typer(people_cli.people_app, name="people")
app.add_typer(people_cli.catalogue_app, name="catalogue")
app.add_typer(notifications_app, name="notifications")
app.command()(reports_cli.report)
app.add_typer(erp_cli.erp_app, name="erp")


def main() -> None:
    app()
