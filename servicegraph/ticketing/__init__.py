"""Ticketing: the service desk. Tickets (incidents and service requests) with a lifecycle,
people and the service catalogue, routing, queues and history; problems, known errors and
changes; SLA clocks on business calendars (``calendar``, ``sla``, ``sla_config``, kept by
the stores through ``sla_projection``) with escalation (``sla_escalation``); notifications
written to an outbox (``notifications``, ``outbox``); reports (``reports``); history
imported from another tool (``servicenow_log``, ``history_import``)."""
