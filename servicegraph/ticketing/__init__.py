"""Ticketing: incidents, problems, changes and known errors with SLA clocks and escalation."""
