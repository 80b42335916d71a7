"""Asset sync with an ERP, both ways: feeds (files, HTTP, Tryton) read into CI
observations through a declared mapping, reconciled under precedence, and what the CMDB
knows better written back."""
