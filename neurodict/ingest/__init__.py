"""Ingest: a session file and its raw recording, validated and recorded as a lazy recording."""
