"""Quart/Hypercorn glue shared by the three services."""
