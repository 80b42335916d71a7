"""The HTTP feed against a real HTTP server on 127.0.0.1: auth, every kind of paging over
2,350 records, relative next links, redirects, and each way a read fails as one line."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from servicegraph.collectors.erp.feeds import open_feed
from servicegraph.collectors.erp.http_feed import HttpFeed
from servicegraph.collectors.erp.mapping import map_records
from servicegraph.collectors.erp.records import FeedError, FeedRead
from servicegraph.collectors.erp.spec import ErpSource, build_source

TOTAL = 2350
TOKEN = "tok-3f9a7c1e5b"
USER, PASSWORD = "cmdb-sync", "pa:ss wörd-91"
ASSETS = [
    {"id": f"A-{n:05d}", "hostname": f"srv-{n}", "cost_center": {"code": f"CC{n % 7}"}}
    for n in range(TOTAL)
]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Handler = Callable[["ErpServer", BaseHTTPRequestHandler, dict[str, str]], None]


@dataclass
class ErpServer:
    """A real HTTP server; ``routes`` maps a path to what answers it. Every request is kept
    in ``seen`` (path, query, headers) for the tests to check what the feed sent."""

    routes: dict[str, Handler]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def send_json(self, req: BaseHTTPRequestHandler, body: Any, status: int = 200) -> None:
        self.send(req, json.dumps(body).encode(), "application/json", status)

    def send(
        self, req: BaseHTTPRequestHandler, data: bytes, content_type: str, status: int = 200
    ) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)


def _serve(routes: dict[str, Handler]) -> Iterator[ErpServer]:
    server = ErpServer(routes)

    class Handle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            server.seen.append(Seen(parts.path, query, dict(self.headers.items())))
            answer = server.routes.get(parts.path)
            if answer is None:
                server.send(self, b"no such route", "text/plain", 404)
                return
            answer(server, self, query)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows failures, not every request

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # a short poll: shutdown() waits for the loop to notice, 0.5 s per test by default
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- what the ERP answers -----------------------------------------------------------------


def by_page(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    if q.get("site") != "hq":  # the URL's own parameter must survive paging
        server.send(req, b"site is required", "text/plain", 400)
        return
    page, size = int(q["page"]), int(q["per_page"])
    items = ASSETS[(page - 1) * size : page * size]
    server.send_json(req, {"data": {"items": items}, "total": TOTAL})


def by_offset(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    start, size = int(q["offset"]), int(q["limit"])
    server.send_json(req, ASSETS[start : start + size])


def by_cursor(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    start = int(q.get("cursor", "0"))
    size = int(q.get("limit", "300"))
    end = start + size
    # relative links without the limit (the server remembers it in the cursor's stead)
    following = f"cursor?cursor={end}&limit={size}" if end < TOTAL else None
    server.send_json(req, {"items": ASSETS[start:end], "links": {"next": following}})


def by_absolute_link(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    start = int(q.get("from", "0"))
    end = start + 1000
    following = f"{server.url}/absolute?from={end}" if end < TOTAL else None
    body: dict[str, Any] = {"results": ASSETS[start:end]}
    if following:
        body["next"] = following  # the last page has no next at all
    server.send_json(req, body)


def everything(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send_json(req, ASSETS)


def bearer_only(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    if req.headers.get("Authorization") != f"Bearer {TOKEN}":
        server.send(req, b'{"error": "invalid token"}', "application/json", 401)
        return
    server.send_json(req, ASSETS[:3])


def basic_only(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if req.headers.get("Authorization") != f"Basic {expected}":
        req.send_response(401)
        req.send_header("WWW-Authenticate", 'Basic realm="erp"')
        req.send_header("Content-Length", "0")
        req.end_headers()
        return
    server.send_json(req, ASSETS[:2])


def forbidden(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send(req, b"no", "text/plain", 403)


def html_page(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send(req, b"<html>\n<body>Please log in</body></html>", "text/html; charset=utf-8")


def broken_json(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send(req, b'[{"id": "A-1"},\n {"id": "A-2",}]', "application/json")


def mixed(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send_json(req, [{"id": "A-1"}, "A-2", None, {"id": "A-4"}])


def forever(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    page = int(q["page"])  # always a full page of new records: it never ends
    server.send_json(req, [{"id": f"P{page}-{n}"} for n in range(int(q["per_page"]))])


def same_page(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send_json(req, ASSETS[:100])  # ignores ?page=


def looping(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    following = "/looping?c=2" if q.get("c") != "2" else "/looping?c=1"
    server.send_json(req, {"items": [{"id": q.get("c", "0")}], "next": following})


def failing(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    detail = f"Traceback: database is locked; request had Bearer {TOKEN}; " + "x" * 400
    server.send(req, detail.encode(), "text/plain", 500)


def wrong_shape(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    server.send_json(req, {"result": {"rows": ASSETS[:2]}, "count": 2})


def slow(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    time.sleep(1.5)
    server.send_json(req, [])


def moved(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    req.send_response(302)
    req.send_header("Location", "/bearer")
    req.send_header("Content-Length", "0")
    req.end_headers()


def cp1251(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
    body = json.dumps([{"id": "БП-1", "name": "Коммутатор"}], ensure_ascii=False)
    server.send(req, body.encode("cp1251"), "application/json; charset=windows-1251")


ROUTES: dict[str, Handler] = {
    "/page": by_page,
    "/offset": by_offset,
    "/api/cursor": by_cursor,
    "/absolute": by_absolute_link,
    "/all": everything,
    "/bearer": bearer_only,
    "/basic": basic_only,
    "/forbidden": forbidden,
    "/html": html_page,
    "/broken": broken_json,
    "/mixed": mixed,
    "/forever": forever,
    "/same": same_page,
    "/looping": looping,
    "/failing": failing,
    "/shape": wrong_shape,
    "/slow": slow,
    "/moved": moved,
    "/cp1251": cp1251,
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib sends every request through a proxy the environment names, 127.0.0.1 too."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def erp() -> Iterator[ErpServer]:
    yield from _serve(dict(ROUTES))


@pytest.fixture
def other_erp() -> Iterator[ErpServer]:
    """A second server (another port: another origin) that records what reaches it."""
    yield from _serve({})


def source(url: str, **extra: Any) -> ErpSource:
    spec = {
        "kind": "http",
        "url": url,
        "key": "id",
        "class": "server",
        "fields": {"name": "hostname", "attributes.cost_centre": "cost_center.code"},
        **extra,
    }
    return build_source("x", spec, path="erp.sources.x")


def read(url: str, **extra: Any) -> FeedRead:
    return HttpFeed(source(url, **extra)).read()


def failure(url: str, **extra: Any) -> str:
    with pytest.raises(FeedError) as caught:
        read(url, **extra)
    message = str(caught.value)
    assert "\n" not in message
    assert TOKEN not in message and PASSWORD not in message
    return message


def ids(got: FeedRead) -> list[str]:
    return [r.fields["id"] for r in got.records]


# --- paging -----------------------------------------------------------------------------


def test_page_paging_reads_every_page_keeping_the_urls_parameters(erp: ErpServer) -> None:
    pages: list[tuple[int, int | None]] = []
    got = HttpFeed(
        source(
            f"{erp.url}/page?site=hq",
            records="data.items",
            paging={"kind": "page", "size": 100},
        )
    ).read(progress=lambda done, total: pages.append((done, total)))
    assert got.complete and got.errors == []
    assert ids(got) == [a["id"] for a in ASSETS]
    assert got.records[0].origin == "x page 1 record 1"
    assert got.records[-1].origin == "x page 24 record 50"
    assert [s.query for s in erp.seen] == [
        {"site": "hq", "page": str(n), "per_page": "100"} for n in range(1, 25)
    ]
    # after each page, then the end with the total known
    assert pages == [*((min(n * 100, TOTAL), None) for n in range(1, 25)), (TOTAL, TOTAL)]


def test_page_paging_ends_on_an_empty_page_when_the_last_is_full(erp: ErpServer) -> None:
    got = read(f"{erp.url}/page?site=hq", records="data.items", paging={"size": 50})
    assert len(got.records) == TOTAL
    assert [s.query["page"] for s in erp.seen] == [str(n) for n in range(1, 49)]  # 47 + empty


def test_offset_paging(erp: ErpServer) -> None:
    got = read(f"{erp.url}/offset", paging={"kind": "offset", "size": 500})
    assert ids(got) == [a["id"] for a in ASSETS]
    assert [s.query for s in erp.seen] == [
        {"offset": str(n), "limit": "500"} for n in (0, 500, 1000, 1500, 2000)
    ]
    assert got.records[2349].origin == "x page 5 record 350"


def test_next_paging_follows_relative_links_at_a_dotted_field(erp: ErpServer) -> None:
    got = read(
        f"{erp.url}/api/cursor",
        records="items",
        paging={"kind": "next", "next_field": "links.next", "size_param": "limit", "size": 400},
    )
    assert ids(got) == [a["id"] for a in ASSETS]
    # the relative "cursor?..." resolves against /api/cursor; the size only on the first
    assert [s.path for s in erp.seen] == ["/api/cursor"] * 6
    assert erp.seen[0].query == {"limit": "400"}
    assert [s.query.get("cursor") for s in erp.seen[1:]] == ["400", "800", "1200", "1600", "2000"]


def test_next_paging_follows_absolute_links_until_there_is_none(erp: ErpServer) -> None:
    got = read(f"{erp.url}/absolute", records="results", paging={"kind": "next"})
    assert len(got.records) == TOTAL and got.complete
    assert [s.query.get("from") for s in erp.seen] == [None, "1000", "2000"]


def test_no_paging_is_one_request_and_the_body_is_the_list(erp: ErpServer) -> None:
    got = read(f"{erp.url}/all")
    assert len(got.records) == TOTAL and len(erp.seen) == 1
    assert erp.seen[0].query == {}
    assert erp.seen[0].headers["Accept"] == "application/json"


def test_a_server_that_pages_forever_stops_at_max_pages(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/forever", paging={"kind": "page", "size": 10, "max_pages": 7})
    assert message == (
        f"erp.sources.x: the ERP at {erp.url}/forever paged more than 7 pages; "
        "raise paging.max_pages or check the server"
    )
    assert len(erp.seen) == 7


def test_a_server_that_ignores_the_page_parameter_is_refused(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/same", paging={"kind": "page", "size": 100})
    assert "page 2" in message and "repeats page 1" in message
    assert "ignores paging.param 'page'" in message
    assert len(erp.seen) == 2


def test_a_next_link_that_loops_is_refused(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/looping", records="items", paging={"kind": "next"})
    assert message == (
        f"erp.sources.x: the ERP's next link on page 3 leads back to {erp.url}/looping?c=2, "
        "a page already read; check paging.next_field"
    )
    assert [s.query.get("c") for s in erp.seen] == [None, "2", "1"]


def test_open_feed_picks_the_http_feed_and_the_records_map(erp: ErpServer) -> None:
    feed = open_feed(source(f"{erp.url}/offset", paging={"kind": "offset", "size": 1000}))
    assert isinstance(feed, HttpFeed)
    mapped = map_records(feed.source, feed.read().records)
    assert mapped.errors == []
    assert len(mapped.observations) == TOTAL
    first = mapped.observations[0]
    assert first.name == "srv-0"
    assert first.attributes["cost_centre"] == "CC0"


# --- auth -------------------------------------------------------------------------------


def test_bearer_token_from_the_environment(erp: ErpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_TOKEN", TOKEN)
    got = read(f"{erp.url}/bearer", auth={"bearer": {"token_env": "ERP_TOKEN"}})
    assert ids(got) == ["A-00000", "A-00001", "A-00002"]


def test_a_wrong_bearer_token_is_one_line_without_the_token(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/bearer", auth={"bearer": {"token": "wrong-token-123"}})
    assert message == (
        f"the ERP refused the credentials (HTTP 401 Unauthorized) at {erp.url}/bearer; "
        "check erp.sources.x.auth"
    )


def test_a_missing_token_variable_names_it(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/bearer", auth={"bearer": {"token_env": "NO_SUCH_ERP_TOKEN"}})
    assert "NO_SUCH_ERP_TOKEN" in message and "erp.sources.x.auth.bearer.token_env" in message
    assert erp.seen == []


def test_basic_auth(erp: ErpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_PASSWORD", PASSWORD)
    got = read(f"{erp.url}/basic", auth={"basic": {"user": USER, "password_env": "ERP_PASSWORD"}})
    assert ids(got) == ["A-00000", "A-00001"]


def test_a_wrong_basic_password_is_refused(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/basic", auth={"basic": {"user": USER, "password": "nope-nope"}})
    assert message.startswith("the ERP refused the credentials (HTTP 401 Unauthorized)")
    assert "nope-nope" not in message


def test_credentials_in_the_url_are_sent_as_basic_and_never_shown(erp: ErpServer) -> None:
    host = erp.url.removeprefix("http://")
    quoted = urllib.parse.quote(PASSWORD, safe="")
    got = read(f"http://{USER}:{quoted}@{host}/basic")
    assert len(got.records) == 2
    message = failure(f"http://{USER}:{quoted}@{host}/bearer")
    assert message.startswith("the ERP refused the credentials (HTTP 401 Unauthorized) at ")
    assert f"{erp.url}/bearer;" in message and quoted not in message


def test_no_auth_where_the_erp_wants_it(erp: ErpServer) -> None:
    assert failure(f"{erp.url}/forbidden") == (
        f"the ERP wants credentials (HTTP 403 Forbidden) at {erp.url}/forbidden; "
        "set erp.sources.x.auth"
    )


def test_extra_headers_are_sent(erp: ErpServer) -> None:
    read(f"{erp.url}/all", headers={"X-Tenant": "hq", "X-Api-Version": 2})
    assert erp.seen[0].headers["X-Tenant"] == "hq"
    assert erp.seen[0].headers["X-Api-Version"] == "2"


def test_bad_headers_are_refused_naming_the_option() -> None:
    with pytest.raises(FeedError, match=r"erp\.sources\.x\.headers\.X-A has a line break"):
        HttpFeed(source("http://127.0.0.1:9/", headers={"X-A": "a\r\nX-B: b"}))
    with pytest.raises(FeedError, match="both auth and an Authorization header"):
        HttpFeed(
            source(
                "http://127.0.0.1:9/",
                auth={"bearer": {"token": TOKEN}},
                headers={"Authorization": "Token abc"},
            )
        )


def test_a_redirect_on_the_same_server_keeps_the_credentials(erp: ErpServer) -> None:
    got = read(f"{erp.url}/moved", auth={"bearer": {"token": TOKEN}})
    assert len(got.records) == 3
    assert [s.path for s in erp.seen] == ["/moved", "/bearer"]


def test_a_redirect_to_another_server_drops_the_credentials(
    erp: ErpServer, other_erp: ErpServer
) -> None:
    def away(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        req.send_response(307)
        req.send_header("Location", f"{other_erp.url}/bearer")
        req.send_header("Content-Length", "0")
        req.end_headers()

    other_erp.routes["/bearer"] = bearer_only
    erp.routes["/away"] = away
    message = failure(f"{erp.url}/away", auth={"bearer": {"token": TOKEN}})
    assert message.startswith("the ERP refused the credentials (HTTP 401")
    assert len(other_erp.seen) == 1 and "Authorization" not in other_erp.seen[0].headers


def test_a_next_link_to_another_server_is_not_followed_with_credentials(
    erp: ErpServer, other_erp: ErpServer
) -> None:
    def elsewhere(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        server.send_json(req, {"items": [{"id": "A"}], "next": f"{other_erp.url}/all"})

    erp.routes["/elsewhere"] = elsewhere
    message = failure(
        f"{erp.url}/elsewhere",
        records="items",
        paging={"kind": "next"},
        auth={"bearer": {"token": TOKEN}},
    )
    assert "leads to another server" in message and other_erp.seen == []


# --- what a page holds ------------------------------------------------------------------


def test_a_record_that_is_not_an_object_is_a_row_error(erp: ErpServer) -> None:
    got = read(f"{erp.url}/mixed")
    assert ids(got) == ["A-1", "A-4"]
    assert [(e.origin, e.field, e.message) for e in got.errors] == [
        ("x page 1 record 2", None, "is a string, not an object of fields"),
        ("x page 1 record 3", None, "is null, not an object of fields"),
    ]
    assert got.complete


def test_a_body_that_is_not_json(erp: ErpServer) -> None:
    assert failure(f"{erp.url}/html") == (
        f"erp.sources.x: page 1 from {erp.url}/html is not JSON (text/html; charset=utf-8): "
        "Expecting value at line 1, column 1; it starts with '<html> <body>Please log in</body>"
        "</html>'"
    )


def test_broken_json_names_line_and_column(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/broken")
    assert message == (
        f"erp.sources.x: page 1 from {erp.url}/broken is not JSON (application/json): "
        "Expecting property name enclosed in double quotes at line 2, column 15; "
        """it starts with '[{"id": "A-1"}, {"id": "A-2",}]'"""
    )


def test_a_missing_records_path_names_what_is_there(erp: ErpServer) -> None:
    assert failure(f"{erp.url}/shape", records="data.items") == (
        f"erp.sources.x.records 'data.items': in page 1 from {erp.url}/shape the body has "
        "no 'data'; its keys are count, result"
    )


def test_an_object_body_without_records_hints_at_its_lists(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/shape")
    assert message.endswith(
        "is an object, not a list: set erp.sources.x.records to the path of the list "
        "(its lists: result.rows)"
    )


def test_a_declared_charset_is_honoured(erp: ErpServer) -> None:
    got = read(f"{erp.url}/cp1251")
    assert got.records[0].fields == {"id": "БП-1", "name": "Коммутатор"}


# --- failures ---------------------------------------------------------------------------


def test_a_closed_port_is_one_clear_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert failure(f"http://127.0.0.1:{port}/assets") == (
        f"cannot reach the ERP at http://127.0.0.1:{port}/assets: connection refused; "
        "check erp.sources.x.url and that the ERP is up"
    )


def test_an_unknown_host_name() -> None:
    message = failure("http://erp.invalid/assets")
    assert message.startswith(
        "cannot reach the ERP at http://erp.invalid/assets: "
        "the host name erp.invalid cannot be resolved"
    )
    assert message.endswith("check erp.sources.x.url and that the ERP is up")


def test_a_server_that_does_not_answer_in_time(erp: ErpServer) -> None:
    assert failure(f"{erp.url}/slow", timeout=0.3) == (
        f"cannot reach the ERP at {erp.url}/slow: no answer within 0.3 s "
        "(erp.sources.x.timeout); check erp.sources.x.url and that the ERP is up"
    )


def test_a_server_error_quotes_the_start_of_its_answer_masking_secrets(erp: ErpServer) -> None:
    message = failure(f"{erp.url}/failing", auth={"bearer": {"token": TOKEN}})
    prefix = f"the ERP answered HTTP 500 Internal Server Error at {erp.url}/failing (page 1): "
    assert message.startswith(prefix)
    quoted = message.removeprefix(prefix)
    assert quoted.startswith("Traceback: database is locked; request had Bearer ***; xxx")
    assert len(quoted) == 200


def test_a_secret_cut_by_the_excerpt_is_still_masked(erp: ErpServer) -> None:
    def echo(server: ErpServer, req: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        server.send(req, ("y" * 195 + PASSWORD).encode(), "text/plain", 502)

    erp.routes["/echo"] = echo
    message = failure(f"{erp.url}/echo", auth={"basic": {"user": USER, "password": PASSWORD}})
    assert message.endswith("y" * 195 + "***")
    assert PASSWORD[:5] not in message


def test_not_found_points_at_the_url(erp: ErpServer) -> None:
    assert failure(f"{erp.url}/nothing-here?api_key=k-123456") == (
        f"the ERP answered HTTP 404 Not Found at {erp.url}/nothing-here?api_key=*** (page 1): "
        "no such route; check erp.sources.x.url"
    )
