"""Delivery: posting work to the CDP — the dispatcher, ordering lanes, the gate, ownership,
retry, and browser ids."""
