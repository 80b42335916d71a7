"""An ERP's REST API as a feed (``kind: http``): JSON pages over HTTP(S) with the standard
library's urllib, so the sync needs no HTTP client dependency.

How it reads: a GET with ``Accept: application/json``, the declared auth and headers, per
page; the records are the list at ``records`` (dotted, e.g. ``data.items``) or the body
itself. Paging (``paging.kind``):

- ``page``: ``param=1, 2 ...`` with ``size_param=size`` until a page has fewer than
  ``size`` records. A server that caps the page size below ``size`` looks like it ended
  after its first page, so ``size`` must not exceed the server's maximum.
- ``offset``: ``param=0, size, 2*size ...`` with ``size_param=size``, ended the same way.
- ``next``: the link at ``next_field`` (dotted; relative links are resolved against the
  page that gave them) until it is null, empty or absent. A declared ``size`` is sent as
  ``size_param`` on the first request only (later links carry their own).
- ``none``: one request.

The URL's own query parameters are kept (``?site=hq``). At most ``max_pages`` requests
are made: a server that pages forever is an error, not a hang; so is a server that ignores
the page parameter (the same full page twice) or a next link that loops back.

Every failure is one FeedError line saying what to check, and nothing is returned from a
read that failed part way: a partial list would let the stale sweep retire what was not
read. Credentials never appear in a message: URLs are shown without ``user:password@`` or
the values of secret-looking query parameters, and every secret is masked in what the
server answered. The credentials go only to the configured server: redirects and next
links to another scheme, host or port are followed without them (redirects) or refused
(next links, when there are credentials), since urllib alone would send them on.
"""

from __future__ import annotations

import base64
import codecs
import http.client
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from servicegraph.collectors.erp.feeds import Progress
from servicegraph.collectors.erp.records import (
    FeedError,
    FeedRead,
    RowError,
    SourceRecord,
    json_type,
    list_at,
)
from servicegraph.collectors.erp.spec import ErpSource

DEFAULT_TIMEOUT_S = 30.0
USER_AGENT = "servicegraph-erp-sync"
# one page held in memory at a time; an answer this large is a paging mistake, not assets
MAX_PAGE_BYTES = 256 << 20
ERROR_EXCERPT = 200  # characters of an error answer a message quotes
_MASK = "***"
# query parameters and extra headers whose values are shown masked
_SECRET_NAME = re.compile(r"token|key|secret|pass|auth|signature|session|cookie", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
# headers urllib sets per request itself; the rest of a request's own headers are ours
_TRANSPORT_HEADERS = {"host", "content-length", "content-type"}


class HttpFeed:
    """An ERP REST API (``kind: http``) as a Feed. ``opener`` (an OpenerDirector) replaces
    the default one, e.g. for a proxy or TLS client certificate; the default follows
    redirects, keeping the credentials only while they stay on the same server."""

    def __init__(
        self, source: ErpSource, *, opener: urllib.request.OpenerDirector | None = None
    ) -> None:
        if source.kind != "http":
            raise ValueError(f"HttpFeed reads kind http, not {source.kind} ({source.name})")
        self.source = source
        self.where = f"erp.sources.{source.name}"
        url = source.option("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise FeedError(f"{self.where}.url is not an http:// or https:// URL")
        self.url, self._url_credentials = _without_userinfo(url)
        self.timeout = float(source.option("timeout", DEFAULT_TIMEOUT_S))
        self.records_path = _records_path(source.option("records"), where=self.where)
        self.headers = _extra_headers(source.option("headers"), where=self.where)
        if source.auth.kind != "none" and any(k.lower() == "authorization" for k in self.headers):
            raise FeedError(
                f"{self.where} sets both auth and an Authorization header; keep one of them"
            )
        self._opener = opener or urllib.request.build_opener(_SameServerRedirects())
        self._secrets: list[str] = []

    def read(self, progress: Progress | None = None) -> FeedRead:
        headers = self._request_headers()  # secrets are read now: when the feed connects
        paging = self.source.paging
        records: list[SourceRecord] = []
        errors: list[RowError] = []
        url = self._first_url()
        visited = {url}
        previous: list[Any] | None = None
        page = 0
        while True:
            if page == paging.max_pages:
                raise self._error(
                    f"{self.where}: the ERP at {_shown(self.url)} paged more than "
                    f"{paging.max_pages} pages; raise paging.max_pages or check the server"
                )
            page += 1
            body = self._get(url, page, headers)
            items = self._items(body, url, page)
            for index, item in enumerate(items, start=1):
                origin = f"{self.source.name} page {page} record {index}"
                if isinstance(item, Mapping):
                    records.append(SourceRecord(origin, item))
                else:
                    errors.append(
                        RowError(origin, None, f"is {json_type(item)}, not an object of fields")
                    )
            if progress is not None:
                progress(len(records) + len(errors), None)
            if paging.kind in ("page", "offset") and items and items == previous:
                raise self._error(
                    f"{self.where}: page {page} from {_shown(url)} repeats page {page - 1}: the "
                    f"ERP ignores paging.param '{paging.param}'; check paging.kind and param"
                )
            previous = items
            following = self._following(url, body, items, page)
            if following is None:
                if progress is not None:  # the end: the total is known now
                    done = len(records) + len(errors)
                    progress(done, done)
                return FeedRead(records=records, errors=errors, complete=True)
            if following in visited:
                raise self._error(
                    f"{self.where}: the ERP's next link on page {page} leads back to "
                    f"{_shown(following)}, a page already read; check paging.next_field"
                )
            visited.add(following)
            url = following

    # --- requests -----------------------------------------------------------------------

    def _request_headers(self) -> dict[str, str]:
        auth = self.source.auth
        headers: dict[str, str] = {}
        self._secrets = [v for k, v in self.headers.items() if _SECRET_NAME.search(k)]
        if auth.kind == "bearer":
            token = auth.token
            if not token:
                raise FeedError(f"{auth.path}.token is empty")
            self._secrets.append(token)
            headers["Authorization"] = f"Bearer {token}"
        elif auth.kind == "basic":
            headers["Authorization"] = self._basic(auth.user, auth.password)
        elif self._url_credentials is not None:
            headers["Authorization"] = self._basic(*self._url_credentials)
        headers.update(self.headers)
        return headers

    def _basic(self, user: str, password: str) -> str:
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._secrets += [s for s in (password, encoded) if s]
        return f"Basic {encoded}"

    def _first_url(self) -> str:
        paging = self.source.paging
        if paging.kind == "page":
            return _with_query(self.url, {paging.param: "1", paging.size_param: str(paging.size)})
        if paging.kind == "offset":
            return _with_query(self.url, {paging.param: "0", paging.size_param: str(paging.size)})
        declared = self.source.option("paging")
        if paging.kind == "next" and isinstance(declared, Mapping) and "size" in declared:
            return _with_query(self.url, {paging.size_param: str(paging.size)})
        return self.url

    def _following(self, url: str, body: Any, items: list[Any], page: int) -> str | None:
        """The URL of the page after ``page``, or None when it was the last."""
        paging = self.source.paging
        if paging.kind == "none":
            return None
        if paging.kind in ("page", "offset"):
            if len(items) < paging.size:
                return None
            value = page + 1 if paging.kind == "page" else page * paging.size
            return _with_query(
                self.url, {paging.param: str(value), paging.size_param: str(paging.size)}
            )
        found, link = _dig(body, paging.next_field)
        if not found or link is None or link == "":
            return None
        if not isinstance(link, str):
            raise self._error(
                f"{self.where}: paging.next_field '{paging.next_field}' on page {page} from "
                f"{_shown(url)} is {json_type(link)}, not a link"
            )
        following, _ = _without_userinfo(urllib.parse.urljoin(url, link.strip()))
        if not following.startswith(("http://", "https://")):
            raise self._error(
                f"{self.where}: the ERP's next link on page {page} is not an http(s) URL: "
                f"{_shown(following)}"
            )
        if _origin(following) != _origin(self.url) and self._has_credentials:
            raise self._error(
                f"{self.where}: the ERP's next link on page {page} leads to another server "
                f"({_shown(following)}); not sending the credentials of {self.where}.auth there"
            )
        return following

    @property
    def _has_credentials(self) -> bool:
        return (
            self.source.auth.kind != "none"
            or self._url_credentials is not None
            or any(k.lower() == "authorization" for k in self.headers)
        )

    def _get(self, url: str, page: int, headers: Mapping[str, str]) -> Any:
        request = urllib.request.Request(url, method="GET")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        for name, value in headers.items():
            # not carried over a redirect by urllib; _SameServerRedirects carries them
            # while it stays on this server
            request.add_unredirected_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                data = answer.read(MAX_PAGE_BYTES + 1)
                content_type = answer.headers.get("Content-Type", "")
                charset = answer.headers.get_content_charset()
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._http_error(exc, url, page) from None
        except urllib.error.URLError as exc:  # refused, name lookup, connect timeout, TLS
            raise self._unreachable(url, exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:  # read timeout, hung up
            raise self._unreachable(url, exc) from None
        if len(data) > MAX_PAGE_BYTES:
            raise self._error(
                f"{self.where}: page {page} from {_shown(url)} is larger than "
                f"{MAX_PAGE_BYTES >> 20} MiB; lower paging.size"
            )
        return self._json(data, charset, content_type, url, page)

    def _json(
        self, data: bytes, charset: str | None, content_type: str, url: str, page: int
    ) -> Any:
        try:
            # JSON is UTF-8 (json.loads detects UTF-16/32 too); a declared charset wins,
            # for the ERPs that answer in windows-1251
            utf8 = charset is None or codecs.lookup(charset).name == "utf-8"
            text: str | bytes = data if utf8 else data.decode(charset or "")
            return json.loads(text)
        except (UnicodeDecodeError, LookupError) as exc:
            raise self._error(
                f"{self.where}: page {page} from {_shown(url)} is not {charset or 'UTF-8'} "
                f"text ({exc}); check the ERP's Content-Type"
            ) from None
        except json.JSONDecodeError as exc:
            kind = f" ({content_type})" if content_type else ""
            start = self._excerpt(data[:4096], 60)
            raise self._error(
                f"{self.where}: page {page} from {_shown(url)} is not JSON{kind}: {exc.msg} at "
                f"line {exc.lineno}, column {exc.colno}"
                + (f"; it starts with {start!r}" if start else "; the body is empty")
            ) from None

    def _items(self, body: Any, url: str, page: int) -> list[Any]:
        path = self.records_path
        if path is not None:
            try:
                return list_at(body, path, top="the body")
            except ValueError as exc:
                where = f"{self.where}.records '{path}'"
                raise self._error(
                    f"{where} in page {page} from {_shown(url)} {exc}"
                    if str(exc).startswith("is ")
                    else f"{where}: in page {page} from {_shown(url)} {exc}"
                ) from None
        if isinstance(body, list):
            return body
        if isinstance(body, Mapping):
            lists = _lists_in(body)
            hint = f" (its lists: {', '.join(lists)})" if lists else ""
            raise self._error(
                f"{self.where}: page {page} from {_shown(url)} is an object, not a list: set "
                f"{self.where}.records to the path of the list{hint}"
            )
        raise self._error(
            f"{self.where}: page {page} from {_shown(url)} is {json_type(body)}, not a list"
        )

    # --- errors -------------------------------------------------------------------------

    def _error(self, message: str) -> FeedError:
        """The one-line FeedError, every secret masked (a server may echo them)."""
        return FeedError(" ".join(self._mask(message).split()))

    def _mask(self, text: str) -> str:
        # a secret of under 4 characters is left: masking it would garble every message
        for secret in sorted((s for s in self._secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, _MASK)
        return text

    def _excerpt(self, data: bytes, limit: int) -> str:
        """The start of an answer, masked before it is cut (no half secret survives)."""
        text = self._mask(data.decode("utf-8", errors="replace"))
        return " ".join(text.split())[:limit]

    def _unreachable(self, url: str, reason: object) -> FeedError:
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
        elif isinstance(reason, socket.gaierror):
            host = urllib.parse.urlsplit(url).hostname
            why = f"the host name {host} cannot be resolved ({reason.strerror})"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {self.timeout:g} s ({self.where}.timeout)"
        elif isinstance(reason, ssl.SSLCertVerificationError):
            why = f"its TLS certificate is not trusted ({reason.verify_message})"
        elif isinstance(reason, http.client.RemoteDisconnected | ConnectionResetError):
            why = "the ERP closed the connection without an answer"
        elif isinstance(reason, http.client.IncompleteRead):
            why = "the answer was cut short"
        else:
            why = str(reason) or type(reason).__name__
        return self._error(
            f"cannot reach the ERP at {_shown(url)}: {why}; "
            f"check {self.where}.url and that the ERP is up"
        )

    def _http_error(self, exc: urllib.error.HTTPError, url: str, page: int) -> FeedError:
        status = f"HTTP {exc.code} {exc.reason}".rstrip()
        if exc.code in (401, 403):
            if not self._has_credentials:
                return self._error(
                    f"the ERP wants credentials ({status}) at {_shown(url)}; set {self.where}.auth"
                )
            return self._error(
                f"the ERP refused the credentials ({status}) at {_shown(url)}; "
                f"check {self.where}.auth"
            )
        try:
            body = self._excerpt(exc.read(4 * ERROR_EXCERPT), ERROR_EXCERPT)
        except (OSError, http.client.HTTPException):
            body = ""
        hint = f"; check {self.where}.url" if exc.code in (404, 410) else ""
        return self._error(
            f"the ERP answered {status} at {_shown(url)} (page {page})"
            + (f": {body}" if body else "")
            + hint
        )


class _SameServerRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects carrying the request's own headers (the credentials) only to the
    same scheme, host and port; urllib by itself would send them to any server."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        following = super().redirect_request(req, fp, code, msg, headers, newurl)
        if following is not None and _origin(following.full_url) == _origin(req.full_url):
            for name, value in req.unredirected_hdrs.items():
                if name.lower() not in _TRANSPORT_HEADERS:
                    following.add_unredirected_header(name, value)
        return following


# --- helpers ----------------------------------------------------------------------------


def _records_path(value: Any, *, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or any(not part for part in value.split(".")):
        raise FeedError(
            f"{where}.records is the dotted path of the list, e.g. data.items (got {value!r})"
        )
    return value


def _extra_headers(value: Any, *, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FeedError(f"{where}.headers maps a header name to its value (got {value!r})")
    headers: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise FeedError(f"{where}.headers: {name!r} is not a header name")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise FeedError(f"{where}.headers.{name} is text (got {json_type(raw)})")
        text = str(raw)
        if "\r" in text or "\n" in text:
            raise FeedError(f"{where}.headers.{name} has a line break")
        headers[name] = text
    return headers


def _without_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without ``user:password@`` (urllib cannot send it) and those credentials."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return bare, (urllib.parse.unquote(user), urllib.parse.unquote(password))


def _shown(url: str) -> str:
    """The URL as messages show it: no credentials, secret-looking parameters masked."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{_MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_NAME.search(k) for k, _ in pairs):
            query = urllib.parse.urlencode(
                [(k, _MASK if _SECRET_NAME.search(k) else v) for k, v in pairs], safe="*"
            )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` set, its other query parameters kept in their order."""
    parts = urllib.parse.urlsplit(url)
    kept = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k not in params
    ]
    query = urllib.parse.urlencode([*kept, *params.items()])
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port or default


def _dig(body: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path of the body."""
    value = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _lists_in(body: Mapping[str, Any], prefix: str = "", depth: int = 2) -> list[str]:
    """The dotted paths of the lists in an object, two levels deep: the hint for records."""
    found: list[str] = []
    for key, value in body.items():
        name = f"{prefix}{key}"
        if isinstance(value, list):
            found.append(name)
        elif isinstance(value, Mapping) and depth > 1:
            found += _lists_in(value, f"{name}.", depth - 1)
    return sorted(found)
