"""Instant messaging and presence rules (RFC 6121) as plain functions, with no I/O."""
