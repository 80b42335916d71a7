"""servicegraph: an open graph CMDB and monitoring-integration service for IT service desks."""

__version__ = "0.1.0"
