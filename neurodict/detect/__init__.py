"""Detect: spike peaks per electrode group, once per session; the sort stage reads them."""
