"""Collectors turn the outside world (SNMP, monitoring sources, ERP) into observations and events.

None of them writes the store directly: they hand plain data to the cmdb and correlation services.
"""
