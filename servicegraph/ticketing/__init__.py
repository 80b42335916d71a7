"""Ticketing: the service desk. Tickets (incidents and service requests) with a lifecycle,
people and the service catalogue, routing, queues and history; problems, known errors and
changes; business calendars (``calendar``) and SLA policies with their clocks (``sla``),
which the desk does not run on tickets yet: no escalation or notification is sent."""
