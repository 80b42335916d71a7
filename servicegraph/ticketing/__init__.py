"""Ticketing: the service desk. Tickets (incidents and service requests) with a lifecycle,
people and the service catalogue, routing, queues and history; problems, known errors and
changes. SLA clocks, escalation and notifications are not built yet (issue [sla])."""
