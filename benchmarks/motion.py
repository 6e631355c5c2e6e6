"""When does motion estimation pay? spikeinterface's ``correct_motion`` estimates against the
known drift of generated recordings, by the probe's span (the settings of ``spikeband.motion``).

Recordings: ``generate_drifting_recording`` on two-column probes (20 µm pitch) of 8 to 64 rows
(span 140 to 1260 µm), one unit per 25 µm of span, 120 s, the generator's zigzag drift of
±20 µm starting at 30 s (period 60 s), seeded, band-passed. For ``nonrigid`` and ``rigid``
(neurodict's preset, :data:`neurodict.preprocess.motion.PRESET`), the estimated displacement
(at each unit's depth, at the truth's times) against the generator's per-unit displacement,
both centred over time:

    error = RMS(estimate − truth) / RMS(truth)

1 is what no correction leaves; below 0.5 the correction removes most of the drift. The rule of
``spikeband.motion: auto`` is read off this table (docs/benchmarks.md, "When motion estimation
pays").

Usage::

    python benchmarks/motion.py                    # rows 8, 16, 32, 64 (about 10 min, 2 cores)
    python benchmarks/motion.py --rows 8 16
"""

from __future__ import annotations

import argparse
import time

import numpy as np

KINDS = ["nonrigid", "rigid"]


def drifting(rows: int, seed: int = 0):
    """Static-free drifting recording, its detected-peak count and the truth's displacement."""
    from spikeinterface.generation import generate_drifting_recording

    span = 20.0 * (rows - 1)
    _, rec, _, extra = generate_drifting_recording(
        num_units=max(2, int(span / 25)),
        duration=120.0,
        probe_name=None,
        generate_probe_kwargs={
            "num_columns": 2,
            "num_contact_per_column": rows,
            "xpitch": 20,
            "ypitch": 20,
            "contact_shapes": "circle",
            "contact_shape_params": {"radius": 6},
        },
        generate_displacement_vector_kwargs={
            "displacement_sampling_frequency": 5.0,
            "drift_start_um": [0, 20],
            "drift_stop_um": [0, -20],
            "drift_step_um": 1,
            "motion_list": [
                {
                    "drift_mode": "zigzag",
                    "non_rigid_gradient": None,
                    "t_start_drift": 30.0,
                    "t_end_drift": None,
                    "period_s": 60,
                }
            ],
        },
        extra_outputs=True,
        seed=seed,
    )
    return rec, span, extra


def truth(extra) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (s), unit depths (µm) and the depth displacement of each unit at each time."""
    fs = extra["displacement_sampling_frequency"]
    depth_disp = extra["unit_displacements"][:, :, 1]  # (times, units)
    times = np.arange(depth_disp.shape[0]) / fs
    return times, extra["unit_locations"][:, 1], depth_disp


def error(motion, times, depths, true_disp) -> float:
    """RMS of the centred estimate minus the centred truth, over RMS of the centred truth."""
    est = np.stack(
        [motion.get_displacement_at_time_and_depth(times, np.full(times.size, d)) for d in depths],
        axis=1,
    )
    est -= est.mean(0)
    true = true_disp - true_disp.mean(0)
    return float(np.sqrt(np.mean((est - true) ** 2)) / np.sqrt(np.mean(true**2)))


def main() -> None:
    from spikeinterface.preprocessing import bandpass_filter, correct_motion

    from neurodict.preprocess.motion import PRESET

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[8, 16, 32, 64])
    args = ap.parse_args()
    table = []
    for rows in args.rows:
        rec, span, extra = drifting(rows)
        rec = bandpass_filter(rec, freq_min=300.0, freq_max=6000.0)
        times, depths, true_disp = truth(extra)
        for kind in KINDS:
            started = time.perf_counter()
            _, motion, info = correct_motion(
                rec,
                preset=PRESET,
                estimate_motion_kwargs={"rigid": kind == "rigid"},
                output_motion=True,
                output_motion_info=True,
                n_jobs=2,
                progress_bar=False,
            )
            wall = time.perf_counter() - started
            n_peaks = len(info["peaks"])
            table.append(
                (
                    2 * rows,
                    span,
                    kind,
                    n_peaks / 120.0,
                    wall,
                    error(motion, times, depths, true_disp),
                )
            )
            print(table[-1], flush=True)
    print("\n| channels | span µm | motion | peaks/s | wall s | error (1 = uncorrected) |")
    print("|---|---|---|---|---|---|")
    for ch, span, kind, rate, wall, err in table:
        print(f"| {ch} | {span:.0f} | {kind} | {rate:.0f} | {wall:.1f} | {err:.2f} |")


if __name__ == "__main__":
    main()
