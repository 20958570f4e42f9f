"""Shared test helpers: imported by the tests and conftest.py as `helpers.<module>`; no tests here."""
