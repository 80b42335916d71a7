"""Reading and editing the graph one item at a time, as people and API clients do.

Bulk sources go through ``Reconciler.apply`` with their own batches; this service is the
front door for everything else: fetch CIs and relationships, page through CIs with
filters, name a CI by id, key or identifier, and create or edit CIs and relationships by
hand. Edits are ordinary reconciliation batches from the source ``manual``, so they obey
the class model, relationship rules, source precedence and history like any import; the
actor comes from the ``ChangeContext`` the entry point set.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servicegraph.cmdb.classes import ClassRegistry
from servicegraph.cmdb.errors import UnknownCI, ValidationErrors, ValidationFailed
from servicegraph.cmdb.identifiers import IdentifierRules
from servicegraph.cmdb.lookup import resolve_ci
from servicegraph.cmdb.model import (
    ConfigurationItem,
    Conflict,
    Lifecycle,
    OperationalState,
    Relationship,
    SourceSighting,
    new_ci_id,
)
from servicegraph.cmdb.observation import CIObservation, CIRef, RelationshipObservation
from servicegraph.cmdb.ports import CIQuery, Direction, GraphStore
from servicegraph.cmdb.reconciliation import Reconciler, batch_from

MANUAL_SOURCE = "manual"
MAX_PAGE = 500
_SCAN_PAGE = 1000  # rows per store call while filtering on what the store cannot filter


@dataclass(frozen=True)
class CIFilter:
    ci_class: str | None = None
    name_contains: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    operational_state: OperationalState | None = None
    lifecycle: Lifecycle | None = None
    stale: bool | None = None


@dataclass(frozen=True)
class CIPage:
    items: list[ConfigurationItem]
    has_next: bool

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.items[-1].id) if self.items else None


def encode_cursor(ci_id: str) -> str:
    return base64.urlsafe_b64encode(f"ci:{ci_id}".encode()).decode()


def decode_cursor(cursor: str, *, field: str = "after") -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("ci:"):
        raise ValidationFailed("is not a cursor this API returned", field=field)
    return text[3:]


@dataclass(frozen=True)
class EditResult:
    ci: ConfigurationItem
    # attributes the edit asked for that a stronger source keeps (source precedence)
    kept_by_source: dict[str, str]


_CI_FIELDS = {"class", "name", "key", "id", "identifiers", "lifecycle", "state"}
_REL_FIELDS = {"type", "from", "to"}


def _relabel(errors: ValidationErrors, known: set[str]) -> ValidationErrors:
    """Attribute errors name the attribute alone; say that it is one of ``attributes``."""
    fixed = []
    for e in errors.errors:
        name = e.field
        if name is not None and name.split(".")[0] not in known:
            name = f"attributes.{name}"
        fixed.append(ValidationFailed(e.reason, field=name))
    return ValidationErrors(fixed)


class CatalogService:
    def __init__(
        self,
        store: GraphStore,
        classes: ClassRegistry,
        identifier_rules: IdentifierRules,
        reconciler: Reconciler,
    ) -> None:
        self.store = store
        self.classes = classes
        self.identifier_rules = identifier_rules
        self.reconciler = reconciler

    # -- reads ----------------------------------------------------------------------------

    def get(self, ids: Iterable[str]) -> dict[str, ConfigurationItem]:
        return self.store.get_cis(ids)

    def require(self, ci_id: str) -> ConfigurationItem:
        ci = self.store.get_cis([ci_id]).get(ci_id)
        if ci is None:
            raise UnknownCI(ci_id)
        return ci

    def resolve(self, ref: str) -> str:
        """The CI id meant by ``ref``: an id, a source key or ``kind:value`` identifier
        (see ``servicegraph.cmdb.lookup``); a merged CI resolves to its survivor."""
        ci = self.store.get_cis([ref]).get(ref)
        if ci is not None and ci.merged_into is None:
            return ci.id  # the common case, one read
        return resolve_ci(self.store, ref, self.identifier_rules)

    def sightings(self, ci_id: str) -> list[SourceSighting]:
        """Per source: when it first and last reported the CI, and its missed runs."""
        return self.store.sightings(ci_id)

    def conflicts(self, *, limit: int = 1000) -> list[Conflict]:
        """The reconciliation conflicts recorded so far, newest first."""
        return self.store.conflicts(limit=limit)

    def counts(self) -> dict[str, int]:
        """Numbers of CIs, relationships, history entries and conflicts."""
        return self.store.counts()

    def find(self, query: CIFilter, *, first: int = 50, after: str | None = None) -> CIPage:
        """A page of CIs ordered by id, after the CI the cursor ``after`` names.

        The store filters on class, name, attributes and staleness; operational state and
        lifecycle are filtered here, reading on in pages until the page is full."""
        if not 1 <= first <= MAX_PAGE:
            raise ValidationFailed(f"must be between 1 and {MAX_PAGE}", field="first")
        if query.ci_class is not None:
            self.classes.get(query.ci_class)  # raises naming "class"
        position = decode_cursor(after) if after is not None else None
        local = query.operational_state is not None or query.lifecycle is not None
        limit = max(first + 1, _SCAN_PAGE) if local else first + 1
        found: list[ConfigurationItem] = []
        while True:
            batch = self.store.find_cis(
                CIQuery(
                    ci_class=query.ci_class,
                    name_contains=query.name_contains or None,
                    attributes=dict(query.attributes),
                    stale=query.stale,
                    limit=limit,
                    after=position,
                )
            )
            found += [
                ci
                for ci in batch
                if (query.operational_state in (None, ci.operational_state))
                and (query.lifecycle in (None, ci.lifecycle))
            ]
            if len(found) > first or len(batch) < limit:
                break
            position = batch[-1].id
        return CIPage(items=found[:first], has_next=len(found) > first)

    def relationships(
        self,
        ci_ids: Iterable[str],
        *,
        direction: Direction = "both",
        types: Iterable[str] | None = None,
    ) -> list[Relationship]:
        type_list = None if types is None else list(types)
        for index, name in enumerate(type_list or ()):
            try:
                self.reconciler.rules.get(name)
            except ValidationFailed as exc:
                raise ValidationFailed(exc.reason, field=f"types.{index}") from None
        return self.store.relationships(ci_ids, direction=direction, types=type_list)

    # -- edits (source "manual") ------------------------------------------------------------

    def _apply_ci(self, obs: CIObservation) -> str:
        try:
            report = self.reconciler.apply(batch_from(MANUAL_SOURCE, [obs]), on_conflict="fail")
        except ValidationErrors as exc:
            raise _relabel(exc, _CI_FIELDS) from None
        ci_id = report.ci_ids[0]
        assert ci_id is not None  # with on_conflict="fail" every record is applied
        return ci_id

    def create_ci(
        self,
        ci_class: str,
        name: str,
        *,
        identifiers: Mapping[str, str | list[str]] | None = None,
        attributes: Mapping[str, Any] | None = None,
        lifecycle: Lifecycle | None = None,
        operational_state: OperationalState | None = None,
        key: str | None = None,
    ) -> EditResult:
        """Create a CI. Refused when its key or an identifier already names a CI: that
        is an update (``update_ci``) or a duplicate to merge."""
        if not name.strip():
            raise ValidationFailed("must not be empty", field="name")
        idents = dict(identifiers or {})
        normal = self.identifier_rules.normalise(idents, item="input")
        held = self.store.resolve_identifiers(normal)
        for identifier, holder in held.items():
            raise ValidationFailed(
                f"{identifier[0]} '{identifier[1]}' already belongs to {holder}; update that "
                "CI instead",
                field=f"identifiers.{identifier[0]}",
            )
        if key is not None and self.store.resolve_keys([key], source=MANUAL_SOURCE).get(key):
            raise ValidationFailed(f"key '{key}' already names a CI", field="key")
        obs = CIObservation(
            ci_class=ci_class,
            name=name,
            identifiers=idents,
            attributes=dict(attributes or {}),
            key=key,
            # nothing to recognise it by: it gets an id, which is how it is named from now
            ci_id=None if key or normal else new_ci_id(),
            lifecycle=lifecycle,
            operational_state=operational_state,
            origin="input",
        )
        return self._result(self._apply_ci(obs), attributes)

    def update_ci(
        self,
        ci_id: str,
        *,
        name: str | None = None,
        identifiers: Mapping[str, str | list[str]] | None = None,
        attributes: Mapping[str, Any] | None = None,
        lifecycle: Lifecycle | None = None,
        operational_state: OperationalState | None = None,
    ) -> EditResult:
        """Change what is given; attributes merge into the CI's (``None`` empties one)."""
        current = self.require(ci_id)
        if current.merged_into is not None:
            raise ValidationFailed(
                f"was merged into {current.merged_into}; edit that CI", field="id"
            )
        if name is not None and not name.strip():
            raise ValidationFailed("must not be empty", field="name")
        obs = CIObservation(
            ci_class=current.ci_class,
            name=name,
            identifiers=dict(identifiers or {}),
            attributes=dict(attributes or {}),
            ci_id=ci_id,
            lifecycle=lifecycle,
            operational_state=operational_state,
            origin="input",
        )
        return self._result(self._apply_ci(obs), attributes)

    def _result(self, ci_id: str, asked: Mapping[str, Any] | None) -> EditResult:
        ci = self.require(ci_id)
        kept = {
            attr: ci.attribute_sources.get(attr, "?")
            for attr, value in (asked or {}).items()
            if ci.attributes.get(attr) != value
        }
        return EditResult(ci, kept)

    def save_relationship(
        self,
        from_id: str,
        rel_type: str,
        to_id: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        must_exist: bool = False,
    ) -> Relationship:
        """Create the relationship, or set its attributes when it exists."""
        ends = self.store.get_cis([from_id, to_id])
        for ci_id, name in ((from_id, "from"), (to_id, "to")):
            if ci_id not in ends:
                raise ValidationFailed(f"no configuration item with id '{ci_id}'", field=name)
        if must_exist and not self._relationship(from_id, rel_type, to_id):
            raise ValidationFailed(
                f"there is no {rel_type} relationship from {from_id} to {to_id}", field="type"
            )
        obs = RelationshipObservation(
            type=rel_type,
            from_ref=CIRef(ci_id=from_id),
            to_ref=CIRef(ci_id=to_id),
            attributes=dict(attributes or {}),
            origin="input",
        )
        try:
            self.reconciler.apply(batch_from(MANUAL_SOURCE, [], [obs]), on_conflict="fail")
        except ValidationErrors as exc:
            raise _relabel(exc, _REL_FIELDS) from None
        saved = self._relationship(from_id, rel_type, to_id)
        assert saved is not None
        return saved

    def remove_relationship(self, from_id: str, rel_type: str, to_id: str) -> bool:
        """Mark it removed (history keeps it); False when there was none."""
        return self.reconciler.remove_relationships([(from_id, rel_type, to_id)]) > 0

    def _relationship(self, from_id: str, rel_type: str, to_id: str) -> Relationship | None:
        found = self.store.relationships([from_id], direction="out", types=[rel_type])
        return next((r for r in found if r.to_id == to_id), None)


def neighbour_ids(ci_id: str, relationships: Sequence[Relationship]) -> list[str]:
    """The other ends of ``relationships`` seen from ``ci_id``, each once, in order."""
    ids = (r.to_id if r.from_id == ci_id else r.from_id for r in relationships)
    return list(dict.fromkeys(ids))
