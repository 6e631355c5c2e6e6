"""Preprocess: the spike band, the LFP band and one LFP per brain region."""
