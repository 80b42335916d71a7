"""Tryton through its JSON-RPC: a feed of any model's records (fixed assets
``account.asset``, serial-number lots ``stock.lot``, products) and the write-back target.

The protocol, as trytond serves it on ``[web] listen``:

- ``POST {url}{database}/rpc/`` with ``{"id": n, "method": ..., "params": [...]}``; the
  answer is ``{"id": n, "result": ...}`` or ``{"id": n, "error": [kind, details]}``;
- ``common.db.login`` with ``[user, {"password": ...}, language]`` gives ``[user id,
  session, bus]``, or HTTP 401 for a wrong password (never retried: each failure makes
  trytond slower to answer, and six lock the login out, HTTP 429); later calls send
  ``Authorization: Session base64(user:id:session)``, and an expired session (401) logs
  in again once; the user's preferences (company) are the context of every call;
- ``model.<model>.search_read`` with ``[domain, offset, limit, order, fields, context]``
  reads a page; a dotted field (``product.name``) comes back as ``{"product.": {"name":
  ...}}``; dates and decimals as ``{"__class__": "date", ...}`` objects, decoded here;
- ``model.<model>.write`` with ``[ids, values, ids, values ..., context]`` writes.

Tryton links an asset to a product, not to a lot: ``related`` joins another model's
records to each one read (``lot: {model: stock.lot, by: product}``: the lot whose
``product`` is the asset's ``product``), so ``lot.number`` maps to the serial number.

Reads page by ``batch_size`` records in id order, so an asset created during a sync is
read once or not at all, never twice. A login refused, an unknown model or field, the
server unreachable: one FeedError line naming the setting to check.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from servicegraph.collectors.erp.feeds import Progress, WriteBackRow
from servicegraph.collectors.erp.records import FeedError, FeedRead, SourceRecord
from servicegraph.collectors.erp.spec import ErpSource, secret

DEFAULT_MODEL = "account.asset"


def _decode(obj: dict[str, Any]) -> Any:
    """Tryton's JSON encoding of the types JSON lacks."""
    kind = obj.get("__class__")
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "datetime":
        return dt.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj.get("hour", 0),
            obj.get("minute", 0),
            obj.get("second", 0),
            obj.get("microsecond", 0),
        )
    if kind == "Decimal":
        return float(obj["decimal"])
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    return obj


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


class TrytonRpc:
    """A signed-in JSON-RPC session with one Tryton database."""

    def __init__(self, source: ErpSource) -> None:
        self.source = source
        self.where = f"erp.sources.{source.name}"
        url = str(source.option("url"))
        self.url = f"{url.rstrip('/')}/{source.option('database')}/rpc/"
        self.user = str(source.option("user"))
        self.timeout = float(source.option("timeout", 30))
        self.context: dict[str, Any] = dict(source.option("context") or {})
        self._auth: str | None = None
        self._id = 0

    def login(self) -> None:
        password = secret(self.source.options, "password", path=self.where)
        self._auth = None
        try:
            result = self._post("common.db.login", [self.user, {"password": password}, "en"])
        except _RpcError as exc:
            hint = (
                "too many failed logins: trytond refuses this user for a while"
                if exc.kind == "HTTP 429"
                else f"check {self.where}.user and password"
            )
            raise FeedError(
                f"{self.where}: Tryton at {self.url} refused the login of '{self.user}' "
                f"({exc.kind}); {hint}"
            ) from None
        if not isinstance(result, list) or len(result) < 2:
            raise FeedError(
                f"{self.where}: Tryton at {self.url} answered the login with {result!r}"
            )
        user_id, session = result[0], result[1]
        token = base64.b64encode(f"{self.user}:{user_id}:{session}".encode()).decode()
        self._auth = f"Session {token}"
        preferences = self.call("model.res.user.get_preferences", [True, {}])
        if isinstance(preferences, dict):  # the user's company: what writes need
            self.context = {**preferences, **dict(self.source.option("context") or {})}

    def call(self, method: str, params: list[Any]) -> Any:
        if self._auth is None:
            self.login()
        for attempt in (1, 2):
            try:
                return self._post(method, params)
            except _RpcError as exc:
                if exc.kind == "HTTP 401" and attempt == 1 and method != "common.db.login":
                    self.login()  # the session expired: trytond's [session] timeout
                    continue
                raise FeedError(
                    f"{self.where}: Tryton refused {method}: {exc.kind}: {exc.detail}"
                ) from None
        raise AssertionError("unreachable")

    def _post(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = json.dumps({"id": self._id, "method": method, "params": params}, default=_encode)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._auth is not None:
            headers["Authorization"] = self._auth
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()[:200].decode("utf-8", "replace")
            if exc.code in (401, 429):
                raise _RpcError(f"HTTP {exc.code}", text) from None
            raise FeedError(
                f"{self.where}: Tryton at {self.url} answered {method} with HTTP {exc.code}: {text}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FeedError(
                f"{self.where}: cannot reach Tryton at {self.url}: {reason}; check "
                f"{self.where}.url and that trytond is running"
            ) from None
        try:
            answer = json.loads(payload, object_hook=_decode)
        except ValueError:
            raise FeedError(
                f"{self.where}: {self.url} did not answer JSON-RPC; is it trytond?"
            ) from None
        if not isinstance(answer, dict):
            raise FeedError(f"{self.where}: {self.url} did not answer JSON-RPC; is it trytond?")
        if answer.get("error"):
            error = answer["error"]
            kind = error[0] if isinstance(error, list) and error else str(error)
            detail = error[1] if isinstance(error, list) and len(error) > 1 else ""
            raise _RpcError(str(kind), _short(detail))
        return answer.get("result")

    # -- models ----------------------------------------------------------------------------

    def search_read(
        self, model: str, domain: list[Any], offset: int, limit: int, fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        result = self.call(
            f"model.{model}.search_read",
            [domain, offset, limit, [["id", "ASC"]], list(fields), self.context],
        )
        if not isinstance(result, list):
            raise FeedError(
                f"{self.where}: search_read on {model} answered {type(result).__name__}"
            )
        return result

    def write(self, model: str, changes: Sequence[tuple[list[int], dict[str, Any]]]) -> None:
        params: list[Any] = []
        for ids, values in changes:
            params.extend([ids, values])
        self.call(f"model.{model}.write", [*params, self.context])


class _RpcError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail


def _short(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def _model(source: ErpSource) -> str:
    return str(source.option("model") or DEFAULT_MODEL)


def _top_fields(names: Sequence[str]) -> list[str]:
    """The fields to ask for: a dotted name is asked as it is (Tryton follows it)."""
    return sorted({"id", *names})


class TrytonFeed:
    """Every record of the source's model that its ``domain`` selects."""

    def __init__(self, source: ErpSource) -> None:
        self.source = source
        self.rpc = TrytonRpc(source)
        self.model = _model(source)
        self.batch = int(source.option("batch_size", 1000))
        self.domain = list(source.option("domain") or [])

    def read(self, progress: Progress | None = None) -> FeedRead:
        self.rpc.login()
        related = _related(self.source)
        fields = _top_fields(
            [
                *(f for f in self.source.source_fields() if f.split(".", 1)[0] not in related),
                *(r.by for r in related.values()),
            ]
        )
        records: list[SourceRecord] = []
        last_id = 0
        while True:
            # by id, after the last one read: a record created meanwhile is not read twice
            page = self.rpc.search_read(
                self.model, [*self.domain, ["id", ">", last_id]], 0, self.batch, fields
            )
            self._join(related, page)
            for row in page:
                records.append(SourceRecord(f"{self.model}/{row['id']}", row))
            if progress is not None:
                progress(len(records), None)
            if len(page) < self.batch:
                break
            last_id = int(page[-1]["id"])
        if progress is not None:
            progress(len(records), len(records))
        return FeedRead(records, [])

    def _join(self, related: dict[str, Related], page: list[dict[str, Any]]) -> None:
        """Each related model's record whose ``by`` field is the row's, under its name."""
        wanted = self.source.source_fields()
        for name, rel in related.items():
            values = sorted({row[rel.by] for row in page if row.get(rel.by) is not None})
            fields = [f.split(".", 1)[1] for f in wanted if f.startswith(f"{name}.")]
            by_value: dict[Any, dict[str, Any]] = {}
            for start in range(0, len(values), self.batch):
                chunk = values[start : start + self.batch]
                rows = self.rpc.search_read(
                    rel.model,
                    [[rel.by, "in", chunk]],
                    0,
                    len(chunk) * 4,
                    _top_fields([rel.by, *fields]),
                )
                for row in rows:
                    by_value.setdefault(row[rel.by], row)  # the first (lowest id) when several
            for row in page:
                row[name] = by_value.get(row.get(rel.by))


class Related:
    """Another model joined to each record: its record whose ``by`` field holds the
    record's ``by`` field's value."""

    def __init__(self, model: str, by: str) -> None:
        self.model = model
        self.by = by


def _related(source: ErpSource) -> dict[str, Related]:
    declared = source.option("related") or {}
    return {name: Related(str(spec["model"]), str(spec["by"])) for name, spec in declared.items()}


class TrytonTarget:
    """Write-back to the records of ``write_back.model`` whose key field holds the ERP id."""

    def __init__(self, source: ErpSource) -> None:
        assert source.write_back is not None
        self.source = source
        self.rpc = TrytonRpc(source)
        self.model = source.write_back.model or _model(source)
        self.key_field = source.key.source
        self.fields = list(source.write_back.fields)
        self._ids: dict[str, int] = {}

    def current(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.rpc.login()
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            rows = self.rpc.search_read(
                self.model,
                [[self.key_field, "in", chunk]],
                0,
                len(chunk) * 2,
                _top_fields([self.key_field, *self.fields]),
            )
            for row in rows:
                key = str(row.get(self.key_field))
                self._ids[key] = int(row["id"])
                found[key] = {f: row.get(f) for f in self.fields}
        return found

    def write(self, rows: Sequence[WriteBackRow]) -> int:
        if not self._ids:
            self.current([r.key for r in rows])
        changes = [([self._ids[r.key]], dict(r.values)) for r in rows if r.key in self._ids]
        for start in range(0, len(changes), 200):
            self.rpc.write(self.model, changes[start : start + 200])
        return len(changes)
