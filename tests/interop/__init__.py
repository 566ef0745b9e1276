"""Interop tests: xmppd against real third-party servers (Prosody), and the harness they use."""
