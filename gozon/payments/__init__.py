"""The payments service: accounts, deposits, and charging each order at most once."""
