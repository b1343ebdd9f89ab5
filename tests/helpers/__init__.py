"""Shared test helpers (hand-computable models)."""
