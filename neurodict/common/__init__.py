"""Helpers every stage shares: atomic files and tables, provenance, the results layout, the
session's SortingAnalyzer. Nothing here imports a stage."""
