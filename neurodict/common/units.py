"""Durations in milliseconds to whole samples, one rule everywhere."""


def ms_to_samples(ms: float, fs_hz: float) -> int:
    """`ms` milliseconds at `fs_hz`, rounded to the nearest whole sample."""
    return int(round(ms * fs_hz / 1000.0))
