"""The orders service: takes orders and learns how their payment went."""
