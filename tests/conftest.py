"""Fixtures shared by every test folder."""

from __future__ import annotations

from tests.postgres import postgres_url

__all__ = ["postgres_url"]
