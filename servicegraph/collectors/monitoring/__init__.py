"""Monitoring sources that push events to us: Alertmanager, Zabbix, the generic JSON API.

Each module validates one payload format and turns it into normalised ``Event`` records;
they are pure functions of the payload and the receive time, tested on recorded input.
"""
