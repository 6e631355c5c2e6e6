"""Clusters: units grouped by their spike->LFP signatures; stability, phase, importance."""
