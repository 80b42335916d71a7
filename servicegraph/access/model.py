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


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ENGINEER = "engineer"
    PROBLEM_MANAGER = "problem_manager"
    ADMIN = "admin"
    INTEGRATION = "integration"


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
}


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

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's name is the actor recorded in history."""

    name: str
    role: Role
    token_id: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]
