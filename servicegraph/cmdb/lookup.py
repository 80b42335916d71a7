"""Finding a CI from what a person types: an id, a source key or an identifier."""

from __future__ import annotations

from servicegraph.cmdb.errors import UnknownCI, ValidationFailed
from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS, IdentifierRules
from servicegraph.cmdb.store.port import GraphStore


def resolve_ci(store: GraphStore, text: str, identifier_rules: IdentifierRules) -> str:
    """The CI id meant by ``text``.

    Accepted forms: a CI id; ``key:<key>`` or a bare key from an import or collector;
    ``<identifier kind>:<value>`` such as ``serial_number:FOC1234X`` or
    ``hostname:web01``. A CI merged into another resolves to the survivor.
    """
    text = text.strip()
    if not text:
        raise ValidationFailed("an empty CI reference", field="ci")
    prefix, sep, rest = text.partition(":")
    ci_id: str | None = None
    if sep and prefix in IDENTIFIER_KINDS:
        (identifier,) = identifier_rules.normalise({prefix: rest}, item=text)
        ci_id = store.resolve_identifiers([identifier]).get(identifier)
    elif sep and prefix == "id":
        ci_id = rest if store.get_cis([rest]) else None
    else:
        key = rest if sep and prefix == "key" else text
        if not (sep and prefix == "key") and store.get_cis([text]):
            ci_id = text
        else:
            matches = store.resolve_keys([key]).get(key, set())
            if len(matches) > 1:
                raise ValidationFailed(
                    f"key '{key}' names {len(matches)} CIs from different sources "
                    f"({', '.join(sorted(matches))}); give the CI id",
                    field="ci",
                )
            ci_id = next(iter(matches), None)
    if ci_id is None:
        raise UnknownCI(text)
    seen: set[str] = set()
    while True:
        ci = store.get_cis([ci_id]).get(ci_id)
        if ci is None or ci.merged_into is None or ci_id in seen:
            return ci_id
        seen.add(ci_id)
        ci_id = ci.merged_into
