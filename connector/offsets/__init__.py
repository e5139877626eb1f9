"""Offsets: which records have an outcome, and what a commit carries about them."""
