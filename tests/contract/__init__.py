"""Contract suites: one base class per port (``*_contract.py``), subclassed per backend
(``test_<backend>_*.py``)."""

import pytest

# the suites are modules of base classes, not test_*.py files: without this their failed
# asserts would show no values
pytest.register_assert_rewrite(
    "tests.contract.directory_contract",
    "tests.contract.dump_contract",
    "tests.contract.inbox_contract",
    "tests.contract.store_contract",
    "tests.contract.ticket_contract",
    "tests.contract.token_contract",
)
