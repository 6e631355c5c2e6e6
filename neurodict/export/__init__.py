"""Exports of a session's results for other tools: NWB (pynwb) and phy (spikeinterface)."""
