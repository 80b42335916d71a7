"""The Tryton fixture against its real server: it answers, the assets it creates are
readable over plain JSON-RPC, and the protocol facts in tryton_fixture's docstring hold."""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.erp.tryton_fixture import (
    TrytonError,
    TrytonHTTPError,
    TrytonServer,
    close_assets,
    create_assets,
    ensure_template,
    post_json,
    run_assets,
    sample_rows,
    update_asset,
)

CTX: dict[str, Any] = {}


def raw(server: TrytonServer, method: str, params: list[Any], auth: bool = True) -> Any:
    """The decoded JSON body of one call, with no help from the fixture's codec."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = server.authorization
    body = json.dumps({"id": 7, "method": method, "params": params}).encode()
    request = urllib.request.Request(server.rpc_url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return json.loads(response.read())


def asset_rows(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "product": "Dell PowerEdge R650",
            "code": f"{prefix}-1",
            "serial": f"{prefix}-SN-1",
            "value": Decimal("4200.00"),
            "purchase_date": dt.date(2024, 3, 1),
            "supplier": "Acme Supplies",
            "comment": "rack A1",
            "run": True,
        },
        {
            "product": "Dell PowerEdge R650",
            "code": f"{prefix}-2",
            "serial": f"{prefix}-SN-2",
            "value": Decimal("4300.50"),
            "purchase_date": dt.date(2024, 3, 1),
            "end_date": dt.date(2029, 2, 28),
            "supplier": "Acme Supplies",
        },
        {
            "product": "Cisco C9300-48P",
            "code": f"{prefix}-3",
            "value": Decimal("99.99"),
            "purchase_date": dt.date(2023, 2, 28),
        },
    ]


def test_server_answers(tryton: TrytonServer) -> None:
    assert post_json(f"{tryton.url}rpc/", "common.server.version", []) == "8.2"
    assert post_json(f"{tryton.url}rpc/", "common.db.list", []) == ["erp"]
    user_id, session, bus = post_json(
        tryton.rpc_url, "common.db.login", ["admin", {"password": tryton.password}, "en"]
    )
    assert (user_id, bus) == (1, None)
    assert len(session) == 64 and int(session, 16) >= 0
    preferences = tryton.call("model.res.user.get_preferences", True, {})
    assert preferences["company"] == tryton.ids()["company"]
    assert preferences["company.rec_name"] == "Servicegraph Test Ltd"


def test_login_failures_and_sessions(tryton: TrytonServer) -> None:
    with pytest.raises(TrytonHTTPError) as wrong:
        post_json(tryton.rpc_url, "common.db.login", ["admin", {"password": "nope"}, "en"])
    assert wrong.value.status == 401
    with pytest.raises(TrytonError) as no_password:
        post_json(tryton.rpc_url, "common.db.login", ["admin", {}, "en"])
    assert no_password.value.error == [
        "LoginException",
        ["password", "Password for admin", "password"],
    ]
    with pytest.raises(TrytonHTTPError) as no_database:
        post_json(f"{tryton.url}nosuchdb/rpc/", "common.db.login", ["admin", {}, "en"])
    assert no_database.value.status == 404
    # a good login clears the failed attempt (else the next ones are delayed)
    user_id, _session = tryton.login()
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        raw(tryton, "model.company.company.search", [[], {}], auth=False)
    assert anonymous.value.code == 401
    bad = "Session " + base64.b64encode(f"admin:{user_id}:{'0' * 64}".encode()).decode()
    with pytest.raises(TrytonHTTPError) as bad_session:
        post_json(tryton.rpc_url, "model.company.company.search", [[], {}], bad)
    assert bad_session.value.status == 401
    basic = "Basic " + base64.b64encode(f"admin:{tryton.password}".encode()).decode()
    assert post_json(tryton.rpc_url, "model.company.company.search", [[], {}], basic) == [1]


def test_assets_readable_over_json_rpc(tryton: TrytonServer) -> None:
    ids = create_assets(tryton, asset_rows("RD"))
    assert len(ids) == 3
    answer = raw(
        tryton,
        "model.account.asset.search_read",
        [
            [["id", "in", ids]],
            0,
            None,
            [["id", "ASC"]],
            [
                "number",
                "state",
                "product",
                "product.code",
                "product.rec_name",
                "value",
                "purchase_date",
                "end_date",
                "comment",
                "company",
                "supplier_invoice_line.invoice.party.name",
            ],
            CTX,
        ],
    )
    assert answer["id"] == 7
    running, draft, bare = answer["result"]
    assert running["number"].startswith("FA-") and len(running["number"]) == 8
    assert running["state"] == "running" and draft["state"] == "draft"
    assert draft["number"] is None
    assert running["product."] == {
        "id": running["product"],
        "code": "RD-1",
        "rec_name": "[RD-1] Dell PowerEdge R650",
    }
    assert running["value"] == {"__class__": "Decimal", "decimal": "4200.00"}
    assert running["purchase_date"] == {"__class__": "date", "year": 2024, "month": 3, "day": 1}
    assert running["end_date"]["year"] == 2027 and draft["end_date"]["year"] == 2029
    assert running["comment"] == "rack A1" and draft["comment"] is None
    assert running["company"] == tryton.ids()["company"]
    party = running["supplier_invoice_line."]["invoice."]["party."]
    assert party["name"] == "Acme Supplies"
    assert bare["supplier_invoice_line."] is None
    assert bare["product."]["code"] == "RD-3"

    # the serial: the one lot of the asset's own product variant
    lots = tryton.call(
        "model.stock.lot.search_read",
        [["product", "in", [running["product"], draft["product"], bare["product"]]]],
        0,
        None,
        [["id", "ASC"]],
        ["number", "product", "product.code"],
        CTX,
    )
    assert [(lot["number"], lot["product."]["code"]) for lot in lots] == [
        ("RD-SN-1", "RD-1"),
        ("RD-SN-2", "RD-2"),
    ]
    running_lines = tryton.call("model.account.asset.read", [ids[0]], ["lines"], CTX)[0]
    assert len(running_lines["lines"]) == 36  # monthly depreciation over three years


def test_paging_is_stable(tryton: TrytonServer) -> None:
    ids = create_assets(tryton, sample_rows(7, prefix="PG"))
    domain = [["product.code", "like", "PG-%"]]
    assert tryton.call("model.account.asset.search_count", domain, CTX) == 7
    pages = [
        tryton.call(
            "model.account.asset.search_read", domain, offset, 3, [["id", "ASC"]], ["id"], CTX
        )
        for offset in (0, 3, 6)
    ]
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [record["id"] for page in pages for record in page] == ids
    assert [r["id"] for r in tryton.search_read("account.asset", domain, ["id"], page=2)] == ids


def test_writes_by_state(tryton: TrytonServer) -> None:
    rows = asset_rows("WR")[:2]
    rows[0]["run"] = False
    running, draft = create_assets(tryton, rows)
    run_assets(tryton, [running])
    update_asset(tryton, draft, {"value": Decimal("1.00"), "comment": "draft note"})
    update_asset(tryton, running, {"comment": "moved to rack B2"})
    with pytest.raises(TrytonError) as refused:
        update_asset(tryton, running, {"value": Decimal("1.00")})
    assert refused.value.error[0] == "UserError"
    assert refused.value.message.startswith('You are not allowed to modify the field "Value"')
    with pytest.raises(TrytonError) as number:
        update_asset(tryton, draft, {"number": "FA-99999"})
    assert number.value.message == (
        'You are not allowed to modify the field "Number" of "Account Asset".'
    )
    close_assets(tryton, [running])
    update_asset(tryton, running, {"comment": "disposed"})
    with pytest.raises(TrytonError):
        update_asset(tryton, running, {"end_date": dt.date(2030, 1, 1)})
    with pytest.raises(TrytonError) as delete:
        tryton.call("model.account.asset.delete", [running], tryton.context())
    assert "because it is not in" in delete.value.message
    # read answers in the model's order, not in the order of the ids asked for
    records = {
        r["id"]: r
        for r in tryton.call(
            "model.account.asset.read",
            [draft, running],
            ["state", "value", "comment", "move.state"],
            CTX,
        )
    }
    assert (records[draft]["state"], records[draft]["comment"]) == ("draft", "draft note")
    assert (records[running]["state"], records[running]["comment"]) == ("closed", "disposed")
    assert records[draft]["value"] == Decimal("1.00")
    assert records[running]["move."]["state"] == "posted"

    lot_fields = tryton.call("model.stock.lot.fields_get", None, CTX)
    assert not {"description", "comment", "note"} & set(lot_fields)
    assert lot_fields["number"]["readonly"] is False
    comment = tryton.call("model.account.asset.fields_get", ["comment"], CTX)["comment"]
    assert (comment["type"], comment["readonly"], comment["states"]) == ("text", False, "{}")


def test_error_shapes(tryton: TrytonServer) -> None:
    with pytest.raises(TrytonError) as model:
        tryton.call("model.no.such.search", [], CTX)
    assert model.value.error == ["'no.such'", ""]
    with pytest.raises(TrytonError) as field:
        tryton.call("model.account.asset.search_read", [], 0, 1, None, ["nosuch"], CTX)
    assert field.value.error == ["'nosuch'", ""]
    with pytest.raises(TrytonError) as domain:
        tryton.call("model.account.asset.search", [["nosuch", "=", 1]], CTX)
    assert domain.value.error == ["'nosuch'", ""]
    with pytest.raises(TrytonHTTPError) as method:
        tryton.call("model.account.asset.nosuch", [], CTX)
    assert method.value.status == 403
    with pytest.raises(TrytonError) as missing:
        tryton.call("model.account.asset.read", [999999], ["id"], CTX)
    assert "don't exist" in missing.value.message
    with pytest.raises(TrytonError) as rule:
        tryton.call(
            "model.account.asset.create",
            [{"product": 1, "value": Decimal(1), "purchase_date": dt.date(2024, 1, 1)}],
            {},
        )
    assert rule.value.error[0] == "UserError"


def test_rows_are_checked_before_any_call(tryton: TrytonServer) -> None:
    row = {"product": "X", "value": 10, "purchase_date": dt.date(2024, 1, 1)}
    with pytest.raises(ValueError, match="row 0: value must be a Decimal"):
        create_assets(tryton, [row])
    with pytest.raises(ValueError, match=r"row 0: unknown keys \['colour'\]"):
        create_assets(tryton, [{**row, "value": Decimal(1), "colour": "red"}])
    with pytest.raises(ValueError, match="row 0: number cannot be given"):
        create_assets(tryton, [{**row, "value": Decimal(1), "number": "FA-1"}])


def test_template_is_cached_and_a_copy_serves(tryton: TrytonServer, tmp_path: Path) -> None:
    again = ensure_template()
    assert again.built is False and again.path == tryton.template.path  # type: ignore[union-attr]
    [asset] = create_assets(tryton, sample_rows(1, prefix="CP"))
    copy = tmp_path / "copy.sqlite"
    tryton.copy_database(copy)
    with TrytonServer().start(tmp_path / "second", source=copy) as second:
        [record] = second.call("model.account.asset.read", [asset], ["product.code"], CTX)
        assert record["product."]["code"] == "CP-000000"
