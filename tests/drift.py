"""Settings of spikeinterface's drifting-recording generator shared by the tests."""

from __future__ import annotations


def two_columns(rows: int) -> dict:
    """``generate_probe_kwargs``: two columns of `rows` contacts, 20 um apart both ways."""
    return {
        "num_columns": 2,
        "num_contact_per_column": rows,
        "xpitch": 20,
        "ypitch": 20,
        "contact_shapes": "circle",
        "contact_shape_params": {"radius": 6},
    }


def zigzag(amplitude_um: float, start_s: float, period_s: float) -> dict:
    """``generate_displacement_vector_kwargs``: one rigid zigzag of ±`amplitude_um` along the
    probe from `start_s`, period `period_s`, sampled at 5 Hz."""
    return {
        "displacement_sampling_frequency": 5.0,
        "drift_start_um": [0, amplitude_um],
        "drift_stop_um": [0, -amplitude_um],
        "drift_step_um": 1,
        "motion_list": [
            {
                "drift_mode": "zigzag",
                "non_rigid_gradient": None,
                "t_start_drift": start_s,
                "t_end_drift": None,
                "period_s": period_s,
            }
        ],
    }
