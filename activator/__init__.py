"""Knative's activator and KPA scaling stub (built in later issues); reuses ``proxy.engine``."""

from __future__ import annotations

__all__: list[str] = []
