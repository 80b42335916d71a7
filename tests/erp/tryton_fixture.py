"""A real Tryton ERP (trytond 8.2, account_asset + stock_lot, SQLite) for the asset sync tests.

Everything below about the protocol was measured against trytond 8.2.1 started by this
module (``.venv/bin/python tests/erp/tryton_fixture.py protocol`` prints it again).

JSON-RPC of trytond 8.2 for a client without proteus
====================================================
Transport: ``POST`` with ``Content-Type: application/json`` and the body
``{"id": 1, "method": ..., "params": [...]}``. The body must have exactly the keys id,
method and params: then every application error comes back as HTTP 200 with
``{"id": 1, "error": [...]}`` and a result as ``{"id": 1, "result": ...}``. Any other
set of keys -- no ``id``, or an extra ``"jsonrpc": "2.0"`` as JSON-RPC 2.0 libraries
send -- switches to a bare mode: the body is the bare result (``[1]``) and errors become
HTTP 400 (a UserError, html), 500 (an unknown model, html); by the code also 409 (a
UserWarning), 423 (a concurrent write), 429.

- Server-wide calls: ``POST {url}rpc/`` -- ``common.server.version`` -> ``"8.2"``,
  ``common.db.list`` -> ``["erp"]``. No authentication.
- Database calls: ``POST {url}{database}/rpc/`` (``http://127.0.0.1:PORT/erp/rpc/``).
  ``POST /erp/`` and ``POST /erp`` answer 405.

Login: method ``common.db.login``, params ``[login, {"password": pw}, language]``, e.g.
``["admin", {"password": "..."}, "en"]``. Result ``[user_id, session_key, null]``
(``[1, "cc3b51d1...8fc", null]``: the user id, a 64-hex-digit session key, the bus URL or
null). Failures:

- wrong password or unknown login: HTTP 401, ``text/html`` body (no JSON);
- no password in the parameters: HTTP 200,
  ``{"error": ["LoginException", ["password", "Password for admin", "password"]]}``;
- unknown database: HTTP 404 (html).
- Each failed attempt makes the next answers slower (the server sleeps a random 0 to
  2**n - 1 s after the n-th failure: one run measured 0.1, 1.1, 1.1, 4.1, 11.1, 19.3 s)
  and after 6 failures for a login every login for it, even with the right password, is
  HTTP 429 until the attempts are older than ``[session] timeout`` (600 s). A client must
  not retry a 401 login in a loop. A good login clears the count.

Later calls carry ``Authorization: Session base64("login:user_id:session_key")``, e.g.
``"Session " + b64encode(b"admin:1:cc3b...")``. A missing or wrong session is HTTP 401
with an empty body; a session idle longer than ``[session] timeout`` (600 s by default)
is 401 too: log in again. ``common.db.logout`` ``[]`` with the header ends the session
(result null; the header is 401 afterwards). ``Authorization: Basic
base64("login:password")`` is accepted on every call as well, but then each call checks
the password (and counts failures).

Model calls: ``model.<model>.<method>`` with the context as the LAST parameter:

- ``model.M.search_read``: ``[domain, offset, limit, order, fields_names, context]``,
  e.g. ``[[["state", "=", "running"]], 0, 100, [["id", "ASC"]], ["number", ...], {}]``.
  ``limit`` null = all; page with offset/limit and a stable order (``[["id", "ASC"]]``).
  Shorter forms work: ``[domain, context]`` reads ids only. ``model.M.search_count``:
  ``[domain, context]`` -> int. ``model.M.search``: ``[domain, offset, limit, order,
  context]`` -> ids. ``model.M.read``: ``[ids, fields_names, context]``; it answers in
  the model's order, NOT in the order of ``ids`` (index the answer by id); a missing id is
  a UserError "You are trying to read records "999" of "Account Asset" that don't exist.".
  ``id`` is always in the answer; ``fields_get`` ``[null, {}]`` describes every field.
- Many2one fields come back as the target id (int) or null. Dotted names are allowed in
  ``fields_names`` and come back NESTED under the first part with a trailing dot:
  ``"product.rec_name"`` gives ``{"product": 7, "product.": {"id": 7, "rec_name":
  "[AT-1] Dell R650"}}``; several levels nest further: ``"supplier_invoice_line.invoice.
  party.name"`` gives ``{"supplier_invoice_line.": {"id": 1, "invoice.": {"id": 1,
  "party.": {"id": 2, "name": "Acme"}}}}`` (the key holds null when the link is empty).
- Values: Decimal as ``{"__class__": "Decimal", "decimal": "1500.00"}``, dates as
  ``{"__class__": "date", "year": 2024, "month": 3, "day": 1}``, datetimes as
  ``{"__class__": "datetime", "year", "month", "day", "hour", "minute", "second",
  "microsecond"}`` -- in requests and in answers (``write_date`` etc. are datetimes).
- ``model.M.create``: ``[[{values}, ...], context]`` -> ids. ``model.M.write``:
  ``[[ids], {values}, context]`` -> null (also ``[[ids], {v}, [ids2], {v2}, context]``).
  ``model.M.delete``: ``[[ids], context]``. Buttons: ``model.account.asset.run`` /
  ``close`` / ``draft``: ``[[ids], context]`` -> null; ``draft`` on an asset with
  depreciation lines: UserError "You can not call "draft" on "FA-00001 - ..." of "Account
  Asset"." (a running asset always has lines).
- Context: reading works with ``{}`` (the user's company applies through record rules);
  creating an asset needs ``{"company": <id>}`` or fails with "You are not allowed to
  create records of "Account Asset" because they fail on at least one of these rules:
  User in companies". ``model.res.user.get_preferences`` ``[true, {}]`` gives the context
  the Tryton client uses (``company``, ``language``, ...).

Fields a sync needs (``fields_get`` ``[null, {}]`` lists all):

- ``account.asset``: id, number (char, readonly: null in draft, set from the asset
  sequence "FA-00001" when the asset runs; cannot be written over RPC), product (m2o
  product.product, domain type=assets & depreciable), state (draft / running / closed,
  readonly: changes only by the run / close / draft buttons), value, depreciated_amount,
  residual_value (Decimal), purchase_date, start_date, end_date (date), quantity (float),
  unit (m2o product.uom), company (m2o), currency (function m2o), supplier_invoice_line
  (m2o account.invoice.line: the supplier is ``supplier_invoice_line.invoice.party``;
  the asset has NO supplier field), customer_invoice_line (function m2o, the sale),
  account_journal, depreciation_method, frequency, comment (text), lines (o2m
  account.asset.line), move (m2o, the closing move), revisions, create_date, write_date.
  There is no lot / serial field on the asset.
- ``stock.lot``: id, number (char, required), product (m2o product.product, required),
  active, quantity / forecast_quantity (function), default_uom, create_date, write_date.
  It has NO description / comment / free-text field (writing "description" is the error
  ``["'description'", ""]``).
- ``product.product``: id, code (readonly, = template code + suffix_code), suffix_code
  (writable), name (readonly, from the template), template, description (text,
  writable), type, depreciable, active, rec_name ("[code] name").
- ``party.party``: id, name, code (from a sequence), rec_name, addresses, active.

Writes on ``account.asset`` (``write [[ids], {values}, {"company": 1}]``):

- draft: product, value, purchase_date, start_date, end_date, quantity, unit,
  residual_value, supplier_invoice_line, comment, ... all writable.
- running and closed: ONLY ``comment`` (the one field without a readonly state); value,
  end_date, product, ... answer
  ``["UserError", ["You are not allowed to modify the field "Value" in record
  "FA-00001 - [AT-1] Dell R650" of "Account Asset".", "", null]]``. number and state are
  readonly everywhere: "You are not allowed to modify the field "Number" of "Account
  Asset"." Deleting a running asset: "You cannot delete asset ... because it is not in
  "draft" state." Changing a running asset's value goes through the account.asset.update
  wizard (not done here).
- ``stock.lot``: number and product are writable (no states; ``write [[1], {"number":
  "NEWSN"}, ctx]`` -> null).

Error shapes (all HTTP 200 with an ``error`` member unless said otherwise):

- a user/validation error: ``["UserError", [message, description, domain_or_null]]``;
  a domain violation puts ``[[domain], {field: fields_get entry}]`` third;
- an unknown model: ``["'no.such'", ""]``; an unknown field in fields_names, a domain or
  values: ``["'nosuch'", ""]`` (the server's KeyError text, quotes included);
- an unknown method on a known model: HTTP 403 (html);
- the SQLite backend's limit: one create of more than ~85 records of a model with a
  UNIQUE/EXCLUDE constraint (product.product, account.asset, account.period, ...) fails
  with HTTP 503 "parser stack overflow" (or "maximum recursion depth exceeded"), because
  trytond emulates those constraints on SQLite with one OR per record: create in batches
  (``BATCH``).

Running the server: ``trytond -c trytond.conf -d erp``. Without ``-d erp`` the first
login fails with ``["'res.user'", ""]`` (the pool of the database is never loaded).
The SQLite file is in WAL mode: copy it only while no server has it open, and together
with (or after checkpointing) its ``-wal`` file.

Data this module creates
========================
``seed_company`` (in the cached template): company "Servicegraph Test Ltd" (EUR), the
standard chart, one fiscal year with monthly periods and invoice sequences per calendar
year ``FISCAL_YEARS``, the product category "Fixed assets" with asset and depreciation
accounts, and the asset sequence prefixed "FA-" (5 digits).

``create_assets`` (over JSON-RPC, as a client would): per row a product variant of a
template named after the row's product (type "assets", depreciable) whose suffix_code is
the row's code, a stock.lot with the row's serial on that variant (so asset -> product ->
its one lot gives the serial: Tryton has no asset-to-lot link), the supplier party and a
draft supplier invoice with one line per asset (the asset's supplier_invoice_line), and
the asset in draft; ``run=True`` runs it (number assigned, depreciation lines created).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import fcntl
import importlib.metadata
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

DATABASE = "erp"
ADMIN_LOGIN = "admin"
# Baked into the cached template, so it is a constant; a test server on 127.0.0.1 only.
ADMIN_PASSWORD = "servicegraph-erp-admin"
MODULES = ("account_asset", "stock_lot")
COMPANY_NAME = "Servicegraph Test Ltd"
CURRENCY = "EUR"
ASSET_CATEGORY = "Fixed assets"
ASSET_NUMBER_PREFIX = "FA-"
FISCAL_YEARS = range(2015, 2036)
# Part of the template's cache key: bump it whenever seed_company changes.
SEED_VERSION = 1
# Records per create call: trytond checks UNIQUE/EXCLUDE constraints on SQLite with one
# OR per record and SQLite's parser gives up at about 85 (see the module docstring).
BATCH = 80
START_TIMEOUT = 60.0
REQUIRED_DISTRIBUTIONS = ("trytond", "trytond-account-asset", "trytond-stock-lot", "proteus")


class TrytonError(Exception):
    """A JSON-RPC ``error`` answer: ``error`` is the list the server sent."""

    def __init__(self, method: str, error: Any) -> None:
        super().__init__(f"{method}: {error!r}")
        self.method = method
        self.error = error

    @property
    def message(self) -> str:
        """The user-facing text of a UserError, else the raw error."""
        if isinstance(self.error, list) and len(self.error) == 2:
            kind, args = self.error
            if kind == "UserError" and isinstance(args, list) and args:
                return str(args[0])
        return repr(self.error)


class TrytonHTTPError(Exception):
    """A non-200 answer (401 bad session or password, 403 unknown method, 429, 503)."""

    def __init__(self, method: str, status: int, body: str) -> None:
        super().__init__(f"{method}: HTTP {status}: {body[:200]}")
        self.method = method
        self.status = status
        self.body = body


# --- wire format -----------------------------------------------------------------------


def _encode(value: Any) -> Any:
    # datetime before date: a datetime is a date too
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
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def _decode(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "date":
        return dt.date(obj["year"], obj["month"], obj["day"])
    if kind == "datetime":
        return dt.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj["hour"],
            obj["minute"],
            obj["second"],
            obj["microsecond"],
        )
    if kind == "time":
        return dt.time(obj["hour"], obj["minute"], obj["second"], obj["microsecond"])
    if kind == "timedelta":
        return dt.timedelta(seconds=obj["seconds"])
    if kind == "bytes":
        return base64.decodebytes(obj["base64"].encode())
    return obj


def post_json(url: str, method: str, params: Sequence[Any], auth: str | None = None) -> Any:
    """One JSON-RPC call; the result, else TrytonError / TrytonHTTPError."""
    body = json.dumps({"id": 1, "method": method, "params": list(params)}, default=_encode)
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            answer = json.loads(response.read(), object_hook=_decode)
    except urllib.error.HTTPError as error:
        raise TrytonHTTPError(method, error.code, error.read().decode(errors="replace")) from None
    if "error" in answer:
        raise TrytonError(method, answer["error"])
    return answer.get("result")


def session_header(login: str, user_id: int, session: str) -> str:
    token = base64.b64encode(f"{login}:{user_id}:{session}".encode()).decode()
    return f"Session {token}"


# --- availability and the cached template ----------------------------------------------


def _script(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def tryton_available() -> str | None:
    """None when trytond, its modules, proteus and the trytond scripts are installed,
    else why not (the reason a test is skipped)."""
    for name in REQUIRED_DISTRIBUTIONS:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return f"{name} is not installed (pip install -e '.[dev]' installs it)"
    for script in ("trytond", "trytond-admin"):
        if _script(script) is None:
            return f"the {script} script is not found beside {sys.executable} nor on PATH"
    return None


def trytond_version() -> str:
    return importlib.metadata.version("trytond")


def cache_dir() -> Path:
    """``$SG_TRYTON_CACHE/<trytond version>``, else
    ``~/.cache/servicegraph/tryton/<trytond version>``."""
    root = os.environ.get("SG_TRYTON_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "servicegraph" / "tryton"
    return base / trytond_version()


def _template_key() -> dict[str, Any]:
    return {
        "seed_version": SEED_VERSION,
        "trytond": trytond_version(),
        "modules": list(MODULES),
        "database": DATABASE,
        "password": ADMIN_PASSWORD,
        "fiscal_years": [FISCAL_YEARS.start, FISCAL_YEARS.stop],
    }


def _write_config(directory: Path, db_dir: Path, port: int | None = None) -> Path:
    lines = ["[database]", "uri = sqlite://", f"path = {db_dir}"]
    if port is not None:
        lines += ["[web]", f"listen = 127.0.0.1:{port}"]
    config = directory / "trytond.conf"
    config.write_text("\n".join(lines) + "\n")
    return config


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _single_file(database: Path) -> None:
    """Fold the WAL into the main file so that copying one file copies the database."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode = DELETE")
    finally:
        connection.close()


@dataclass
class TemplateBuild:
    path: Path
    built: bool  # False: taken from the cache
    seconds: float
    admin_seconds: float = 0.0
    seed_seconds: float = 0.0


def ensure_template() -> TemplateBuild:
    """The initialised and seeded erp.sqlite in the cache, built once (about 30 s) under
    a lock so that parallel sessions build it once."""
    started = time.monotonic()
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    template = directory / f"{DATABASE}.sqlite"
    key_file = directory / f"{DATABASE}.json"
    key = _template_key()
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if template.exists() and key_file.exists():
            with contextlib.suppress(ValueError):
                if json.loads(key_file.read_text()) == key:
                    return TemplateBuild(template, False, time.monotonic() - started)
        with tempfile.TemporaryDirectory(dir=directory, prefix="build-") as build_dir:
            admin_seconds, seed_seconds, built = _build_template(Path(build_dir))
            os.replace(built, template)
        key_file.write_text(json.dumps(key))
    return TemplateBuild(template, True, time.monotonic() - started, admin_seconds, seed_seconds)


def _build_template(build_dir: Path) -> tuple[float, float, Path]:
    db_dir = build_dir / "db"
    db_dir.mkdir()
    database = db_dir / f"{DATABASE}.sqlite"
    database.touch()  # the SQLite backend refuses a database file that does not exist
    config = _write_config(build_dir, db_dir)
    password_file = build_dir / "password"
    password_file.write_text(ADMIN_PASSWORD)
    admin = _script("trytond-admin")
    assert admin is not None, "tryton_available() first"
    env = {**os.environ, "TRYTONPASSFILE": str(password_file)}
    started = time.monotonic()
    command = [admin, "-c", str(config), "-d", DATABASE, "--all"]
    command += ["--email", "admin@example.com", "-u", *MODULES, "--activate-dependencies"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(
            f"trytond-admin exited {done.returncode}:\n{_tail(done.stdout + done.stderr)}"
        )
    admin_seconds = time.monotonic() - started
    # proteus in-process against the file, in a child: trytond's configuration and pool
    # are process-wide and must not leak into the test session.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, __file__, "seed", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding exited {done.returncode}:\n{_tail(done.stdout + done.stderr)}")
    seed_seconds = time.monotonic() - started
    _single_file(database)
    return admin_seconds, seed_seconds, database


def seed_company(
    config_file: Path | str,
    *,
    database: str = DATABASE,
    company_name: str = COMPANY_NAME,
    currency: str = CURRENCY,
    years: Iterable[int] = FISCAL_YEARS,
) -> dict[str, int]:
    """Company, chart of accounts, fiscal years, the asset category and the asset number
    sequence, with proteus inside THIS process (``ensure_template`` runs it in a child
    against a database no server has open). Returns the ids it made."""
    from proteus import Model  # type: ignore[import-untyped]
    from proteus import config as proteus_config
    from trytond.modules.account.tests.tools import (  # type: ignore[import-untyped]
        create_chart,
        create_fiscalyear,
        get_accounts,
    )
    from trytond.modules.account_asset.tests.tools import (  # type: ignore[import-untyped]
        add_asset_accounts,
    )
    from trytond.modules.account_invoice.tests.tools import (  # type: ignore[import-untyped]
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import (  # type: ignore[import-untyped]
        create_company,
        get_company,
    )

    proteus_config.set_trytond(database=database, config_file=str(config_file))
    party = Model.get("party.party")(name=company_name)
    party.save()
    create_company(party, currency)
    company = get_company()
    create_chart(company)
    for year in years:
        # one fiscal year per calendar year: trytond validates a year's periods with one
        # OR per period, and SQLite refuses a 12-year fiscal year ("parser stack overflow")
        fiscalyear = create_fiscalyear(company, today=(dt.date(year, 1, 1), dt.date(year, 12, 31)))
        fiscalyear = set_fiscalyear_invoice_sequences(fiscalyear)
        fiscalyear.click("create_period")
    accounts = add_asset_accounts(get_accounts(company), company)
    category = Model.get("product.category")(name=ASSET_CATEGORY)
    category.accounting = True
    category.account_expense = accounts["expense"]
    category.account_revenue = accounts["revenue"]
    category.account_asset = accounts["asset"]
    category.account_depreciation = accounts["depreciation"]
    category.save()
    configuration = Model.get("account.configuration")(1)
    sequence = configuration.asset_sequence
    sequence.prefix = ASSET_NUMBER_PREFIX
    sequence.padding = 5
    sequence.save()
    return {
        "company": company.id,
        "category": category.id,
        "asset_account": accounts["asset"].id,
        "payable_account": accounts["payable"].id,
    }


# --- the server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TrytonServer:
    """A trytond process on 127.0.0.1 over a copy of the cached template."""

    database: str = DATABASE
    user: str = ADMIN_LOGIN
    password: str = ADMIN_PASSWORD
    port: int = 0
    workdir: Path | None = None
    template: TemplateBuild | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    user_id: int | None = None
    session: str | None = field(default=None, repr=False)
    _ids: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def rpc_url(self) -> str:
        return f"{self.url}{self.database}/rpc/"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "start() first"
        return self.workdir / "trytond.log"

    @property
    def database_path(self) -> Path:
        assert self.workdir is not None, "start() first"
        return self.workdir / "db" / f"{self.database}.sqlite"

    def start(
        self, tmpdir: Path, timeout: float = START_TIMEOUT, source: Path | None = None
    ) -> TrytonServer:
        """Serve a copy of the cached template (or of ``source``, a file ``copy_database``
        wrote: a benchmark can keep its 10,000 assets that way) from ``tmpdir``."""
        self.template = ensure_template()
        self.workdir = Path(tmpdir)
        db_dir = self.workdir / "db"
        db_dir.mkdir(parents=True, exist_ok=True)
        for stale in db_dir.glob(f"{self.database}.sqlite*"):
            stale.unlink()
        shutil.copyfile(source or self.template.path, self.database_path)
        self.port = _free_port()
        config = _write_config(self.workdir, db_dir, self.port)
        trytond = _script("trytond")
        assert trytond is not None, "tryton_available() first"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [trytond, "-c", str(config), "-d", self.database],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        atexit.register(self.stop)  # a session that dies without teardown leaves no server
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"trytond exited {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                post_json(f"{self.url}rpc/", "common.server.version", [])
                self.login()
                return
            except (OSError, TrytonError, TrytonHTTPError) as error:
                last = str(error)
            time.sleep(0.2)
        raise RuntimeError(
            f"trytond did not answer JSON-RPC on {self.url} within {timeout:.0f} s "
            f"({last}):\n{self.log_tail()}"
        )

    def copy_database(self, destination: Path) -> None:
        """A consistent single-file copy of the live database (SQLite's backup API reads
        through the WAL), to ``start(source=...)`` later."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")
        source = sqlite3.connect(self.database_path)
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        _single_file(partial)
        os.replace(partial, destination)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> TrytonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- JSON-RPC -----------------------------------------------------------------------

    def login(self) -> tuple[int, str]:
        user_id, session, _bus = post_json(
            self.rpc_url, "common.db.login", [self.user, {"password": self.password}, "en"]
        )
        self.user_id, self.session = int(user_id), str(session)
        return self.user_id, self.session

    @property
    def authorization(self) -> str:
        if self.user_id is None or self.session is None:
            self.login()
        assert self.user_id is not None and self.session is not None
        return session_header(self.user, self.user_id, self.session)

    def call(self, method: str, *params: Any) -> Any:
        """``method`` on the database with the session; logs in again once on 401 (an
        idle session times out after 10 minutes)."""
        try:
            return post_json(self.rpc_url, method, params, self.authorization)
        except TrytonHTTPError as error:
            if error.status != 401:
                raise
            self.login()
            return post_json(self.rpc_url, method, params, self.authorization)

    def context(self) -> dict[str, Any]:
        return {"company": self.ids()["company"]}

    def ids(self) -> dict[str, int]:
        """The ids of the seeded records create_assets needs, looked up once."""
        if not self._ids:

            def one(model: str, domain: list[Any]) -> int:
                found = self.call(f"model.{model}.search", domain, 0, 2, None, {})
                if len(found) != 1:
                    raise LookupError(f"{model} {domain}: {len(found)} records, expected 1")
                return int(found[0])

            self._ids = {
                "company": one("company.company", [["party.name", "=", COMPANY_NAME]]),
                "unit": one("product.uom", [["name", "=", "Unit"]]),
                "category": one("product.category", [["name", "=", ASSET_CATEGORY]]),
                "asset_account": one("account.account", [["code", "=", "1.5.3"]]),
                "payable_account": one("account.account", [["code", "=", "2.1.1"]]),
            }
        return self._ids

    def search_read(
        self,
        model: str,
        domain: list[Any],
        fields_names: Sequence[str],
        *,
        order: Sequence[tuple[str, str]] = (("id", "ASC"),),
        page: int = 1000,
    ) -> list[dict[str, Any]]:
        """Every record, ``page`` at a time (offset/limit over a stable order)."""
        records: list[dict[str, Any]] = []
        while True:
            batch = self.call(
                f"model.{model}.search_read",
                domain,
                len(records),
                page,
                [list(pair) for pair in order],
                list(fields_names),
                {},
            )
            records.extend(batch)
            if len(batch) < page:
                return records


# --- the data builder -------------------------------------------------------------------


def _batches(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _create(server: TrytonServer, model: str, values: Sequence[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    context = server.context()
    for batch in _batches(values):
        ids.extend(server.call(f"model.{model}.create", list(batch), context))
    return ids


def _plus_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


ROW_KEYS = {
    "product",
    "code",
    "serial",
    "value",
    "purchase_date",
    "start_date",
    "end_date",
    "supplier",
    "comment",
    "run",
}


def _check_rows(rows: Sequence[dict[str, Any]]) -> None:
    for index, row in enumerate(rows):
        if "number" in row:
            raise ValueError(
                f"row {index}: number cannot be given: Tryton sets it from the asset sequence "
                f"when the asset runs (run=True); put an asset tag in code"
            )
        unknown = set(row) - ROW_KEYS
        if unknown:
            raise ValueError(f"row {index}: unknown keys {sorted(unknown)}")
        if not isinstance(row.get("product"), str) or not row["product"]:
            raise ValueError(f"row {index}: product must be a non-empty product name")
        if not isinstance(row.get("value"), Decimal):
            raise ValueError(f"row {index}: value must be a Decimal, got {row.get('value')!r}")
        if not isinstance(row.get("purchase_date"), dt.date):
            raise ValueError(f"row {index}: purchase_date must be a date")


def _name_ids(server: TrytonServer, model: str, names: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for batch in _batches(sorted(names), 500):
        for record in server.call(
            f"model.{model}.search_read",
            [["name", "in", list(batch)]],
            0,
            None,
            [["id", "ASC"]],
            ["name"],
            {},
        ):
            found.setdefault(record["name"], record["id"])
    return found


def create_assets(server: TrytonServer, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Create one asset per row over JSON-RPC and return their ids in row order.

    A row: ``product`` (str, the product template's name, shared by rows that name it),
    ``value`` (Decimal), ``purchase_date`` (date) and optionally ``code`` (the variant's
    suffix_code: product.code, an asset tag), ``serial`` (a stock.lot number on the
    asset's own variant), ``start_date`` (purchase_date), ``end_date`` (start + 3 years -
    1 day), ``supplier`` (party name: party and a draft supplier invoice line linked as
    the asset's supplier_invoice_line), ``comment`` and ``run`` (True: the asset runs,
    gets its FA- number and depreciation lines; default: it stays in draft).
    """
    _check_rows(rows)
    if not rows:
        return []
    ids = server.ids()
    context = server.context()

    names = {row["product"] for row in rows}
    templates = _name_ids(server, "product.template", names)
    missing = sorted(names - set(templates))
    created = _create(
        server,
        "product.template",
        [
            {
                "name": name,
                "type": "assets",
                "default_uom": ids["unit"],
                "list_price": Decimal(0),
                "account_category": ids["category"],
                "depreciable": True,
                "depreciation_duration": 36,
                "products": [],  # no default variant: each asset gets its own below
            }
            for name in missing
        ],
    )
    templates.update(zip(missing, created, strict=True))

    products = _create(
        server,
        "product.product",
        [{"template": templates[row["product"]], "suffix_code": row.get("code")} for row in rows],
    )
    lots = [
        {"number": row["serial"], "product": product}
        for row, product in zip(rows, products, strict=True)
        if row.get("serial")
    ]
    _create(server, "stock.lot", lots)

    invoice_lines = _supplier_invoice_lines(server, rows, products)

    assets = []
    for row, product, line in zip(rows, products, invoice_lines, strict=True):
        start = row.get("start_date") or row["purchase_date"]
        end = row.get("end_date") or _plus_years(start, 3) - dt.timedelta(days=1)
        values: dict[str, Any] = {
            "product": product,
            "value": row["value"],
            "purchase_date": row["purchase_date"],
            "start_date": start,
            "end_date": end,
            "quantity": 1.0,
            "unit": ids["unit"],
        }
        if line is not None:
            values["supplier_invoice_line"] = line
        if row.get("comment") is not None:
            values["comment"] = row["comment"]
        assets.append(values)
    asset_ids = _create(server, "account.asset", assets)

    to_run = [asset for row, asset in zip(rows, asset_ids, strict=True) if row.get("run")]
    for batch in _batches(to_run):
        server.call("model.account.asset.run", list(batch), context)
    return asset_ids


def _supplier_invoice_lines(
    server: TrytonServer, rows: Sequence[dict[str, Any]], products: Sequence[int]
) -> list[int | None]:
    """A draft supplier invoice per (supplier, purchase date) with one line per asset."""
    ids = server.ids()
    suppliers = {row["supplier"] for row in rows if row.get("supplier")}
    if not suppliers:
        return [None] * len(rows)
    parties = _name_ids(server, "party.party", suppliers)
    missing = sorted(suppliers - set(parties))
    created = _create(
        server, "party.party", [{"name": name, "addresses": [["create", [{}]]]} for name in missing]
    )
    parties.update(zip(missing, created, strict=True))
    addresses: dict[int, int] = {}
    for batch in _batches(sorted(parties.values()), 500):
        for address in server.call(
            "model.party.address.search_read",
            [["party", "in", list(batch)]],
            0,
            None,
            [["id", "ASC"]],
            ["party"],
            {},
        ):
            addresses.setdefault(address["party"], address["id"])

    keys = sorted({(row["supplier"], row["purchase_date"]) for row in rows if row.get("supplier")})
    invoices = _create(
        server,
        "account.invoice",
        [
            {
                "type": "in",
                "party": parties[supplier],
                "invoice_address": addresses[parties[supplier]],
                "account": ids["payable_account"],
                "invoice_date": day,
            }
            for supplier, day in keys
        ],
    )
    invoice_of = dict(zip(keys, invoices, strict=True))
    wanted = [
        (index, row, product)
        for index, (row, product) in enumerate(zip(rows, products, strict=True))
        if row.get("supplier")
    ]
    line_ids = _create(
        server,
        "account.invoice.line",
        [
            {
                "invoice": invoice_of[(row["supplier"], row["purchase_date"])],
                "type": "line",
                "product": product,
                "quantity": 1.0,
                "unit": ids["unit"],
                "unit_price": row["value"],
                "account": ids["asset_account"],
                "description": row["product"],
            }
            for _, row, product in wanted
        ],
    )
    lines: list[int | None] = [None] * len(rows)
    for (index, _, _), line in zip(wanted, line_ids, strict=True):
        lines[index] = line
    return lines


def update_asset(server: TrytonServer, asset_id: int, values: dict[str, Any]) -> None:
    """``write`` on one asset: in draft any field, once running or closed only comment
    (else TrytonError "You are not allowed to modify the field ...")."""
    server.call("model.account.asset.write", [asset_id], values, server.context())


def run_assets(server: TrytonServer, asset_ids: Sequence[int]) -> None:
    for batch in _batches(list(asset_ids)):
        server.call("model.account.asset.run", list(batch), server.context())


def close_assets(server: TrytonServer, asset_ids: Sequence[int]) -> None:
    """Dispose of running assets: state closed, a posted closing move dated today."""
    for batch in _batches(list(asset_ids)):
        server.call("model.account.asset.close", list(batch), server.context())


def sample_rows(count: int, prefix: str = "BM") -> list[dict[str, Any]]:
    """``count`` distinct asset rows over a few product models and suppliers."""
    models = ["Dell PowerEdge R650", "Cisco C9300-48P", "HPE ProLiant DL380", "Juniper EX4300"]
    suppliers = ["Acme Supplies", "Northwind Traders", "Contoso Hardware"]
    return [
        {
            "product": models[index % len(models)],
            "code": f"{prefix}-{index:06d}",
            "serial": f"{prefix}SN{index:08d}",
            "value": Decimal(1000 + index % 5000) + Decimal("0.50"),
            "purchase_date": dt.date(2020 + index % 6, 1 + index % 12, 1 + index % 28),
            "supplier": suppliers[index % len(suppliers)],
        }
        for index in range(count)
    ]


def _exchange(url: str, method: str, params: list[Any], auth: str | None = None) -> None:
    """Print one raw JSON-RPC exchange (urllib and json only, no codec)."""
    body = json.dumps({"id": 1, "method": method, "params": params}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, kind, text = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        status, kind, text = error.code, error.headers["Content-Type"], error.read()
    print(f"> POST {url} {body.decode()[:300]}")
    print(f"< {status} {kind} {text.decode(errors='replace')[:400]}\n")


def _protocol(workdir: Path) -> None:
    """Start a server, create two assets and print the exchanges the docstring describes."""
    with TrytonServer().start(workdir) as server:
        ids = create_assets(server, sample_rows(2, prefix="PR"))
        run_assets(server, ids[:1])
        url, context = server.rpc_url, {"company": server.ids()["company"]}
        _exchange(f"{server.url}rpc/", "common.server.version", [])
        _exchange(url, "common.db.login", ["admin", {"password": "wrong"}, "en"])
        _exchange(url, "common.db.login", ["admin", {}, "en"])
        _exchange(url, "common.db.login", ["admin", {"password": server.password}, "en"])
        auth = server.authorization
        _exchange(url, "model.company.company.search", [[], {}])  # no Authorization
        _exchange(url, "model.company.company.search", [[], {}], auth)
        fields_names = ["number", "state", "product", "product.code", "value", "purchase_date"]
        fields_names.append("supplier_invoice_line.invoice.party.name")
        _exchange(
            url,
            "model.account.asset.search_read",
            [[], 0, 2, [["id", "ASC"]], fields_names, {}],
            auth,
        )
        _exchange(
            url, "model.stock.lot.search_read", [[], 0, 2, None, ["number", "product"], {}], auth
        )
        _exchange(url, "model.account.asset.write", [ids[:1], {"comment": "ok"}, context], auth)
        _exchange(url, "model.account.asset.write", [ids[:1], {"end_date": None}, context], auth)
        _exchange(url, "model.stock.lot.write", [[1], {"description": "x"}, context], auth)
        _exchange(url, "model.no.such.search", [[], {}], auth)
        _exchange(url, "model.account.asset.nosuch", [[], {}], auth)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["seed"] and len(argv) == 2:
        print(json.dumps(seed_company(argv[1])))
        return 0
    if argv == ["protocol"]:
        with tempfile.TemporaryDirectory() as workdir:
            _protocol(Path(workdir))
        return 0
    print(f"usage: {Path(__file__).name} seed TRYTOND_CONF | protocol", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
