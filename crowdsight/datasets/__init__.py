"""Readers for public labelled datasets used by `crowdsight eval` (users bring the data)."""
