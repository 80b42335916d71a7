"""ERP sources as declared in the settings (``erp.sources``): one per feed, each with its
kind, schedule, key, class and field mapping, the fields the ERP owns and its write-back.

Shape (YAML; see the README, "Asset sync with an ERP")::

    erp:
      sources:
        fixed-assets:
          kind: csv                    # csv, xlsx, json, directory, http, tryton
          path: /exports/assets.csv
          schedule: 3600               # seconds between runs; 0 or absent: on demand
          key: InventoryNo             # the ERP's id of an asset: source key and erp_id
          class: {from: Category, transforms: [{map: {Switch: network_device}}]}
          fields:
            name: Name
            identifiers.serial_number: {from: SerialNo, transforms: [trim, upper]}
            identifiers.asset_tag: InventoryNo
            attributes.cost_centre: CostCenter
            attributes.purchase_date: {from: Bought, transforms: [{date: "%d.%m.%Y"}]}
          owns: [cost_centre, owner, asset_tag, purchase_date]
          write_back: {path: /exports/to-erp.csv, fields: {SerialNo: identifiers.serial_number}}

Checked once when the settings load: every error is a ValidationFailed naming the field
path (``erp.sources.fixed-assets.fields.name``), so a typo stops the service at start,
not a sync at 3 a.m.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from servicegraph.cmdb.errors import ValidationFailed
from servicegraph.cmdb.identifiers import IDENTIFIER_KINDS
from servicegraph.collectors.erp.records import FeedError
from servicegraph.collectors.erp.transforms import Transform, build_transform

SourceKind = Literal["csv", "xlsx", "json", "directory", "http", "tryton"]
KINDS: tuple[SourceKind, ...] = ("csv", "xlsx", "json", "directory", "http", "tryton")
FILE_KINDS = ("csv", "xlsx", "json", "directory")
# the source name under which a feed's observations, keys and sightings are recorded:
# precedence ranks "erp:<name>" as "erp" unless a rule names it (cmdb/precedence.py)
SOURCE_PREFIX = "erp:"
SCALAR_TARGETS = ("name", "lifecycle", "state")
# what write-back may send to the ERP besides attributes and identifiers
CMDB_FACTS = ("name", "class", "lifecycle", "operational_state", "last_seen", "ci_id")

_COMMON_KEYS = {
    "kind",
    "schedule",
    "complete",
    "allow_partial",
    "key",
    "class",
    "fields",
    "owns",
    "write_back",
}
_KIND_KEYS: dict[str, set[str]] = {
    "csv": {"path", "encoding", "delimiter"},
    "xlsx": {"path", "sheet", "header_row"},
    "json": {"path", "records", "encoding"},
    "directory": {"path", "pattern", "encoding", "delimiter", "sheet", "records"},
    "http": {"url", "records", "auth", "paging", "timeout", "headers"},
    "tryton": {
        "related",
        "url",
        "database",
        "user",
        "password",
        "password_env",
        "model",
        "domain",
        "batch_size",
        "timeout",
        "context",
    },
}
_WRITE_BACK_KEYS = {"fields", "path", "model"}


@dataclass(frozen=True)
class FieldMapping:
    """One target of an observation and the source field (dotted for nested values:
    ``product.name``) it comes from, with its transforms."""

    target: str  # name, lifecycle, state, identifiers.<kind>, attributes.<name>, key, class
    source: str
    transform: Transform = field(default_factory=Transform)

    @cached_property  # read per record and field: computed once
    def prefix(self) -> str:
        """``identifiers``, ``attributes``, or the target itself."""
        return self.target.partition(".")[0]

    @cached_property
    def rest(self) -> str:
        """The identifier kind or attribute name (empty for name, lifecycle, state)."""
        return self.target.partition(".")[2]


@dataclass(frozen=True)
class HttpAuth:
    """How an HTTP feed signs in; the secret is read when it connects (``secret``)."""

    kind: Literal["none", "bearer", "basic"] = "none"
    user: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict, repr=False)
    path: str = ""

    @property
    def token(self) -> str:
        return secret(self.spec, "token", path=self.path)

    @property
    def password(self) -> str:
        return secret(self.spec, "password", path=self.path)


@dataclass(frozen=True)
class HttpPaging:
    """How an HTTP feed pages: ``page`` (page=1, 2 ... until a page shorter than ``size``),
    ``offset`` (offset=0, size, 2*size ...), or ``next`` (a link in the body, e.g.
    ``next``). A ``paging:`` mapping without ``kind`` pages by ``page``; no ``paging:`` at
    all is one request."""

    kind: Literal["none", "page", "offset", "next"] = "none"
    param: str = "page"
    size_param: str = "per_page"
    size: int = 500
    next_field: str = "next"
    max_pages: int = 10_000  # bounded: a server that pages forever is an error, not a hang


@dataclass(frozen=True)
class WriteBack:
    """What goes back to the ERP: ERP field -> a CMDB fact (``identifiers.<kind>``,
    ``attributes.<name>``, one of CMDB_FACTS) or a template with ``{...}`` placeholders
    of those. ``path`` (file feeds): the export file; ``model`` (Tryton): the model written."""

    fields: Mapping[str, str]
    path: Path | None = None
    model: str | None = None


@dataclass(frozen=True)
class ErpSource:
    name: str
    kind: SourceKind
    key: FieldMapping
    ci_class: FieldMapping | str  # a constant class, or the mapping that gives it
    fields: tuple[FieldMapping, ...]
    schedule_s: float = 0.0
    complete: bool = True
    # scheduled runs: write the valid records when some are bad (the CLI: --allow-partial)
    allow_partial: bool = False
    owns: tuple[str, ...] = ()
    write_back: WriteBack | None = None
    # kind-specific options as declared (path, url, encoding, paging ...), checked here;
    # never printed: a Tryton password or an HTTP token may be among them
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    path: Path | None = None
    auth: HttpAuth = field(default_factory=HttpAuth)
    paging: HttpPaging = field(default_factory=HttpPaging)

    @property
    def source_name(self) -> str:
        return f"{SOURCE_PREFIX}{self.name}"

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def source_fields(self) -> list[str]:
        """Every source field the mapping reads (what an RPC read must ask for)."""
        names = [self.key.source, *(f.source for f in self.fields)]
        if isinstance(self.ci_class, FieldMapping):
            names.append(self.ci_class.source)
        return list(dict.fromkeys(names))


def build_sources(
    spec: Mapping[str, Any] | None, *, path: str = "erp.sources"
) -> dict[str, ErpSource]:
    """Every declared source, checked; raises ValidationFailed naming the field path."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ValidationFailed("maps a source name to its declaration", field=path)
    sources: dict[str, ErpSource] = {}
    for name, declared in spec.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValidationFailed("a source name is letters, digits, '-' and '_'", field=where)
        sources[name] = build_source(name, declared, path=where)
    return sources


def build_source(name: str, spec: Any, *, path: str) -> ErpSource:
    if not isinstance(spec, Mapping):
        raise ValidationFailed("a source is a mapping (kind, key, fields ...)", field=path)
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(KINDS)}", field=f"{path}.kind")
    allowed = _COMMON_KEYS | _KIND_KEYS[kind]
    unknown = set(spec) - allowed
    if unknown:
        raise ValidationFailed(
            f"unknown keys {sorted(unknown)} for a {kind} source; use {', '.join(sorted(allowed))}",
            field=f"{path}.{sorted(unknown)[0]}",
        )
    if "key" not in spec:
        raise ValidationFailed(
            "is required: the ERP's id of an asset (e.g. InventoryNo)", field=f"{path}.key"
        )
    key = _field_mapping("key", spec["key"], path=f"{path}.key")
    ci_class = _class_mapping(spec.get("class"), path=f"{path}.class")
    fields = _fields(spec.get("fields"), path=f"{path}.fields")
    schedule = spec.get("schedule", 0) or 0
    if not _is_number(schedule) or schedule < 0:
        raise ValidationFailed("seconds between runs (0: on demand)", field=f"{path}.schedule")
    complete = spec.get("complete", True)
    if not isinstance(complete, bool):
        raise ValidationFailed("true or false", field=f"{path}.complete")
    allow_partial = spec.get("allow_partial", False)
    if not isinstance(allow_partial, bool):
        raise ValidationFailed("true or false", field=f"{path}.allow_partial")
    owns = spec.get("owns") or []
    if not isinstance(owns, list) or not all(isinstance(o, str) and o for o in owns):
        raise ValidationFailed("a list of attribute names", field=f"{path}.owns")
    options = {k: v for k, v in spec.items() if k in _KIND_KEYS[kind]}
    source = ErpSource(
        name=name,
        kind=kind,
        key=key,
        ci_class=ci_class,
        fields=fields,
        schedule_s=float(schedule),
        complete=complete,
        allow_partial=allow_partial,
        owns=tuple(owns),
        options=options,
    )
    return _with_kind_options(source, spec, path)


def _with_kind_options(source: ErpSource, spec: Mapping[str, Any], path: str) -> ErpSource:
    from dataclasses import replace

    kind = source.kind
    changes: dict[str, Any] = {}
    if kind in FILE_KINDS:
        raw = spec.get("path")
        if not isinstance(raw, str) or not raw:
            what = "the directory exports land in" if kind == "directory" else "the file"
            raise ValidationFailed(f"is required: {what}", field=f"{path}.path")
        changes["path"] = Path(raw).expanduser()
        encoding = spec.get("encoding", "auto")
        if not isinstance(encoding, str) or not _known_encoding(encoding):
            raise ValidationFailed(
                "auto, or a codec such as utf-8, cp1251, latin-1", field=f"{path}.encoding"
            )
        delimiter = spec.get("delimiter", "auto")
        if delimiter != "auto" and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise ValidationFailed(
                "auto or one character (; , or a tab)", field=f"{path}.delimiter"
            )
    if kind in ("http", "tryton"):
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationFailed("is required: an http:// or https:// URL", field=f"{path}.url")
        timeout = spec.get("timeout", 30)
        if not _is_number(timeout) or timeout <= 0:
            raise ValidationFailed("seconds, more than 0", field=f"{path}.timeout")
    if "records" in spec and (not isinstance(spec["records"], str) or not spec["records"]):
        raise ValidationFailed(
            "the dotted path of the list, e.g. data.items", field=f"{path}.records"
        )
    headers = spec.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and (isinstance(v, str) or _is_number(v)) for k, v in headers.items()
    ):
        raise ValidationFailed("maps a header name to its value (text)", field=f"{path}.headers")
    if kind == "http":
        changes["auth"] = _auth(spec.get("auth"), path=f"{path}.auth")
        changes["paging"] = _paging(spec.get("paging"), path=f"{path}.paging")
    if kind == "tryton":
        for required in ("database", "user"):
            if not isinstance(spec.get(required), str) or not spec[required]:
                raise ValidationFailed("is required", field=f"{path}.{required}")
        _check_secret(spec, "password", path=path, required=True)
        batch = spec.get("batch_size", 1000)
        if not _is_number(batch) or not isinstance(batch, int) or not 1 <= batch <= 100_000:
            raise ValidationFailed("records per RPC call, 1 to 100000", field=f"{path}.batch_size")
        related = spec.get("related", {})
        if not isinstance(related, Mapping) or not all(
            isinstance(r, Mapping)
            and set(r) == {"model", "by"}
            and all(isinstance(v, str) and v for v in r.values())
            for r in related.values()
        ):
            raise ValidationFailed(
                "name -> {model: stock.lot, by: product}: the record of model whose field "
                "'by' holds the same value as the record's ('on' is a boolean to YAML)",
                field=f"{path}.related",
            )
        domain = spec.get("domain", [])
        if not isinstance(domain, list):
            raise ValidationFailed(
                "a Tryton domain: a list such as [[state, '!=', draft]]", field=f"{path}.domain"
            )
    if "write_back" in spec:
        changes["write_back"] = _write_back(
            spec["write_back"], kind, spec.get("model"), path=f"{path}.write_back"
        )
    return replace(source, **changes)


def secret(spec: Mapping[str, Any], name: str, *, path: str) -> str:
    """A password or token given inline or, better, by the environment variable
    ``<name>_env`` names (settings files get committed; environments don't). Read when a
    feed connects, so a variable set only where syncs run does not stop the API starting;
    raises FeedError when it is not set."""
    env = spec.get(f"{name}_env")
    if env is not None:
        value = os.environ.get(str(env))
        if value is None:
            raise FeedError(f"the environment variable {env} ({path}.{name}_env) is not set")
        return value
    return str(spec.get(name, ""))


def _check_secret(spec: Mapping[str, Any], name: str, *, path: str, required: bool) -> None:
    env = spec.get(f"{name}_env")
    if env is not None and (not isinstance(env, str) or not env):
        raise ValidationFailed("the name of an environment variable", field=f"{path}.{name}_env")
    if name in spec and not isinstance(spec[name], str):
        raise ValidationFailed("must be a string", field=f"{path}.{name}")
    if required and env is None and not spec.get(name):
        raise ValidationFailed(f"is required ({name} or {name}_env)", field=f"{path}.{name}")


def _auth(spec: Any, *, path: str) -> HttpAuth:
    if spec is None:
        return HttpAuth()
    if (
        not isinstance(spec, Mapping)
        or len(spec) != 1
        or next(iter(spec)) not in ("bearer", "basic")
    ):
        raise ValidationFailed(
            "{bearer: {token_env: VAR}} or {basic: {user: u, password_env: VAR}}", field=path
        )
    ((kind, body),) = spec.items()
    if not isinstance(body, Mapping):
        raise ValidationFailed("a mapping", field=f"{path}.{kind}")
    if kind == "bearer":
        _check_secret(body, "token", path=f"{path}.bearer", required=True)
        return HttpAuth("bearer", spec=dict(body), path=f"{path}.bearer")
    user = body.get("user")
    if not isinstance(user, str) or not user:
        raise ValidationFailed("is required", field=f"{path}.basic.user")
    _check_secret(body, "password", path=f"{path}.basic", required=False)
    return HttpAuth("basic", user=user, spec=dict(body), path=f"{path}.basic")


def _paging(spec: Any, *, path: str) -> HttpPaging:
    if spec is None:
        return HttpPaging()
    if not isinstance(spec, Mapping):
        raise ValidationFailed("a mapping such as {kind: page, size: 500}", field=path)
    allowed = {"kind", "param", "size_param", "size", "next_field", "max_pages"}
    unknown = set(spec) - allowed
    if unknown:
        raise ValidationFailed(
            f"unknown keys {sorted(unknown)}; use {', '.join(sorted(allowed))}", field=path
        )
    kind = spec.get("kind", "page")
    if kind not in ("none", "page", "offset", "next"):
        raise ValidationFailed("none, page, offset or next", field=f"{path}.kind")
    defaults = HttpPaging()
    values: dict[str, Any] = {"kind": kind}
    if kind == "offset":
        values["param"] = "offset"
        values["size_param"] = "limit"
    for name in ("param", "size_param", "next_field"):
        if name in spec:
            if not isinstance(spec[name], str) or not spec[name]:
                raise ValidationFailed("a parameter name", field=f"{path}.{name}")
            values[name] = spec[name]
    for name, low in (("size", 1), ("max_pages", 1)):
        if name in spec:
            if not _is_number(spec[name]) or not isinstance(spec[name], int) or spec[name] < low:
                raise ValidationFailed(f"a whole number, at least {low}", field=f"{path}.{name}")
            values[name] = spec[name]
    return HttpPaging(**{**defaults.__dict__, **values})


def _write_back(spec: Any, kind: str, feed_model: Any, *, path: str) -> WriteBack:
    if kind in ("http",):
        raise ValidationFailed(
            "an HTTP feed is read only; write back to a file or Tryton", field=path
        )
    if not isinstance(spec, Mapping):
        raise ValidationFailed("a mapping with fields (and path or model)", field=path)
    unknown = set(spec) - _WRITE_BACK_KEYS
    if unknown:
        raise ValidationFailed(
            f"unknown keys {sorted(unknown)}; use {', '.join(sorted(_WRITE_BACK_KEYS))}", field=path
        )
    fields = spec.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        raise ValidationFailed(
            "ERP field -> CMDB fact, e.g. {comment: attributes.model}", field=f"{path}.fields"
        )
    for erp_field, fact in fields.items():
        if not isinstance(fact, str) or not fact:
            raise ValidationFailed("a CMDB fact or a template", field=f"{path}.fields.{erp_field}")
        for name in template_facts(fact):
            check_fact(name, field=f"{path}.fields.{erp_field}")
    target: Path | None = None
    if kind in FILE_KINDS:
        raw = spec.get("path")
        if not isinstance(raw, str) or not raw:
            raise ValidationFailed(
                "is required: the file written for the ERP", field=f"{path}.path"
            )
        target = Path(raw).expanduser()
    model = spec.get("model")
    if kind == "tryton":
        model = model or feed_model or "account.asset"  # the records the feed reads
        if not isinstance(model, str):
            raise ValidationFailed("a Tryton model such as account.asset", field=f"{path}.model")
    return WriteBack(fields=dict(fields), path=target, model=model)


def template_facts(expression: str) -> list[str]:
    """The facts an expression names: itself, or each ``{...}`` of a template."""
    if "{" not in expression:
        return [expression]
    import string

    return [name for _, name, _, _ in string.Formatter().parse(expression) if name]


def check_fact(name: str, *, field: str) -> None:
    prefix, _, rest = name.partition(".")
    if name in CMDB_FACTS or (prefix == "attributes" and rest):
        return
    if prefix == "identifiers" and rest in IDENTIFIER_KINDS:
        return
    raise ValidationFailed(
        f"'{name}' is not a CMDB fact; use identifiers.<kind>, attributes.<name> or one of "
        f"{', '.join(CMDB_FACTS)}",
        field=field,
    )


def _fields(spec: Any, *, path: str) -> tuple[FieldMapping, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, Mapping):
        raise ValidationFailed(
            "maps a target (name, identifiers.serial_number ...) to a source field", field=path
        )
    result = []
    for target, declared in spec.items():
        where = f"{path}.{target}"
        _check_target(str(target), field=where)
        result.append(_field_mapping(str(target), declared, path=where))
    return tuple(result)


def _check_target(target: str, *, field: str) -> None:
    prefix, _, rest = target.partition(".")
    if target in SCALAR_TARGETS or (prefix == "attributes" and rest):
        return
    if prefix == "identifiers":
        if rest in IDENTIFIER_KINDS:
            return
        raise ValidationFailed(
            f"unknown identifier kind '{rest}'; known: {', '.join(IDENTIFIER_KINDS)}", field=field
        )
    raise ValidationFailed(
        "a target is name, lifecycle, state, identifiers.<kind> or attributes.<name>", field=field
    )


def _field_mapping(target: str, spec: Any, *, path: str) -> FieldMapping:
    if isinstance(spec, str) and spec:
        return FieldMapping(target, spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"from", "transforms"}
        if unknown:
            raise ValidationFailed(
                f"unknown keys {sorted(unknown)}; use from and transforms", field=path
            )
        source = spec.get("from")
        if not isinstance(source, str) or not source:
            raise ValidationFailed("is required: the source field", field=f"{path}.from")
        return FieldMapping(
            target, source, build_transform(spec.get("transforms"), field=f"{path}.transforms")
        )
    raise ValidationFailed("a source field name, or {from: field, transforms: [...]}", field=path)


def _class_mapping(spec: Any, *, path: str) -> FieldMapping | str:
    if spec is None:
        raise ValidationFailed(
            "is required: a class (network_device) or {from: Category, transforms: [{map: ...}]}",
            field=path,
        )
    if isinstance(spec, str):
        return spec  # a constant: checked against the class registry by validation
    return _field_mapping("class", spec, path=path)


def _is_number(value: Any) -> bool:
    # YAML's true is an int to Python: not a number of seconds or records
    return isinstance(value, int | float) and not isinstance(value, bool)


def _known_encoding(name: str) -> bool:
    if name == "auto":
        return True
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


# query parameters whose values are not shown (any name containing one of these)
_SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "pwd", "auth", "sig", "cred")


def public_url(url: str) -> str:
    """``url`` without what may sign in: no user or password, no fragment, and the values
    of query parameters named like a secret (``token``, ``api_key`` ...) replaced by ***."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = [
        (name, "***" if any(s in name.lower() for s in _SECRET_PARAMS) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(query, safe="*/:,"), ""))


def location(source: ErpSource) -> str | None:
    """Where a feed reads from, safe to show: the file or directory, or the URL without
    credentials."""
    if source.kind in FILE_KINDS:
        return str(source.path) if source.path is not None else None
    url = source.option("url")
    return public_url(url) if isinstance(url, str) else None
