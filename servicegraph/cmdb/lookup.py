"""Finding a CI from what a person types: an id, a source key or an identifier.

``parse_reference`` reads the text without asking the store, so that a caller resolving
many references at once (the correlator's event mapper) reads them exactly as
``resolve_ci`` does and batches the store calls itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS, Identifier, IdentifierRules
from servicegraph.cmdb.ports import GraphStore


@dataclass(frozen=True, slots=True)
class CIReference:
    """What a reference asks the store for: an identifier; or an id, then a key."""

    text: str
    ci_id: str | None = None
    key: str | None = None
    identifier: Identifier | None = None


def parse_reference(text: str, identifier_rules: IdentifierRules) -> CIReference:
    """Accepted forms: a CI id (or ``id:<id>``); ``key:<key>`` or a bare key from an
    import or collector; ``<identifier kind>:<value>`` such as ``serial_number:FOC1234X``
    or ``hostname:web01``. Raises ``ValidationFailed`` for an empty reference or an
    identifier value its kind refuses."""
    text = text.strip()
    if not text:
        raise ValidationFailed("an empty CI reference", field="ci")
    prefix, sep, rest = text.partition(":")
    if sep and prefix in IDENTIFIER_KINDS:
        found = identifier_rules.normalise({prefix: rest}, item=text)
        if not found:
            raise ValidationFailed(f"no {prefix} after '{prefix}:'", field="ci")
        return CIReference(text, identifier=found[0])
    if sep and prefix == "id":
        return CIReference(text, ci_id=rest)
    if sep and prefix == "key":
        return CIReference(text, key=rest)
    return CIReference(text, ci_id=text, key=text)


def survivors(store: GraphStore, ci_ids: Iterable[str]) -> dict[str, str]:
    """Each id with the CI it was merged into, however many merges on (itself when it was
    not merged or is unknown): one store read per merge level."""
    wanted = set(ci_ids)
    merged_into: dict[str, str | None] = {}
    pending = wanted
    while pending:
        found = store.get_cis(pending)
        for ci_id in pending:
            ci = found.get(ci_id)
            merged_into[ci_id] = ci.merged_into if ci is not None else None
        pending = {m for m in merged_into.values() if m is not None and m not in merged_into}

    def live(ci_id: str) -> str:
        seen: set[str] = set()
        while (nxt := merged_into.get(ci_id)) is not None and ci_id not in seen:
            seen.add(ci_id)
            ci_id = nxt
        return ci_id

    return {ci_id: live(ci_id) for ci_id in wanted}


def ambiguous_key(key: str, owners: set[str]) -> ValidationFailed:
    return ValidationFailed(
        f"key '{key}' names {len(owners)} CIs from different sources "
        f"({', '.join(sorted(owners))}); give the CI id",
        field="ci",
    )


def resolve_ci(store: GraphStore, text: str, identifier_rules: IdentifierRules) -> str:
    """The CI id meant by ``text`` (forms: ``parse_reference``). A CI merged into another
    resolves to the survivor; a key naming CIs of several sources (after merges) is
    refused rather than guessed."""
    ref = parse_reference(text, identifier_rules)
    ci_id: str | None = None
    if ref.identifier is not None:
        ci_id = store.resolve_identifiers([ref.identifier]).get(ref.identifier)
    if ref.ci_id is not None and store.get_cis([ref.ci_id]):
        ci_id = ref.ci_id
    elif ref.key is not None:
        owners = set(survivors(store, store.resolve_keys([ref.key]).get(ref.key, ())).values())
        if len(owners) > 1:
            raise ambiguous_key(ref.key, owners)
        ci_id = next(iter(owners), None)
    if ci_id is None:
        raise UnknownCI(text.strip())
    return survivors(store, [ci_id])[ci_id]
