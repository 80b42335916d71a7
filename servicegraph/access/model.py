"""Roles, the permissions they grant, API tokens and the principal a request acts as."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass


class Permission(enum.StrEnum):
    READ = "read"  # query the graph, monitoring and tickets
    EDIT_CMDB = "edit_cmdb"  # create and update CIs and relationships
    WORK_INCIDENTS = "work_incidents"  # acknowledge, assign, comment on, resolve incidents
    MANAGE_PROBLEMS = "manage_problems"  # problems, known errors, incident -> problem links
    MANAGE_CHANGES = "manage_changes"  # create changes
    INGEST = "ingest"  # post monitoring events to the webhooks
    MANAGE_DESK = "manage_desk"  # the people of one's own groups, contacts, the catalogue
    MANAGE_PEOPLE = "manage_people"  # every agent and group, and importing people


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ENGINEER = "engineer"
    PROBLEM_MANAGER = "problem_manager"
    ADMIN = "admin"
    INTEGRATION = "integration"
    AGENT = "agent"  # a service-desk agent: reads, and works tickets
    GROUP_MANAGER = "group_manager"  # an agent who also manages their groups' people


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.ENGINEER: frozenset(
        {
            Permission.READ,
            Permission.EDIT_CMDB,
            Permission.WORK_INCIDENTS,
            Permission.MANAGE_CHANGES,
        }
    ),
    Role.PROBLEM_MANAGER: frozenset(
        {Permission.READ, Permission.WORK_INCIDENTS, Permission.MANAGE_PROBLEMS}
    ),
    Role.ADMIN: frozenset(Permission),
    # monitoring systems: they post events and can read nothing
    Role.INTEGRATION: frozenset({Permission.INGEST}),
    # the desk's people: tickets are incidents and service requests (WORK_INCIDENTS); a
    # group manager edits the agents of the groups they manage (Group.manager, checked
    # against the token's holder), contacts, organisations and the service catalogue
    Role.AGENT: frozenset({Permission.READ, Permission.WORK_INCIDENTS}),
    Role.GROUP_MANAGER: frozenset(
        {Permission.READ, Permission.WORK_INCIDENTS, Permission.MANAGE_DESK}
    ),
}

INTEGRATION_PREFIX = "integration:"  # a holder that is a system, not an agent of the desk


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token: the secret itself is never kept, only its SHA-256."""

    id: str
    name: str
    role: Role
    secret_sha256: str
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None = None
    # whom it belongs to: an agent's login, or ``integration:<name>`` for a system
    holder: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def holder_agent(holder: str | None) -> str | None:
    """The agent login a holder names (None for an integration or no holder)."""
    if holder is None or holder.startswith(INTEGRATION_PREFIX):
        return None
    return holder


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's holder, if it has one, is the actor recorded in
    history (an agent's login, or ``integration:<name>``); else the token's name."""

    name: str
    role: Role
    token_id: str | None = None
    holder: str | None = None

    @property
    def actor(self) -> str:
        return self.holder or self.name

    @property
    def agent(self) -> str | None:
        """The login of the agent the token belongs to, if it belongs to one."""
        return holder_agent(self.holder)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]
