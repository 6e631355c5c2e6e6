"""Summary: pooled clusters across sessions and the summary page."""
