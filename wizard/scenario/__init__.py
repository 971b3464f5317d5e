"""Scenario I/O: share links, TOML files, the saved store and redaction."""
