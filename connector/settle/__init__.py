"""Settle: one place decides what becomes of each record — skipped, dead letter, or work."""
