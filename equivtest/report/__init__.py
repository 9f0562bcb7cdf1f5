"""Reporters: terminal tables (and, later, HTML)."""

from .terminal import criteria_table, print_results

__all__ = ["criteria_table", "print_results"]
