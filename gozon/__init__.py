"""Gozon: orders and payments that are never lost and never charged twice."""
