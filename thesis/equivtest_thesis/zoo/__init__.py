"""Embedded networks the project trains itself, deterministically, and caches."""
