"""The export step: one session's sorting, LFPs and tables to NWB and to phy."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import spikeinterface as si

from neurodict.common.analyzer import analyze_units, quality_metrics
from neurodict.common.files import atomic_path, write_json
from neurodict.common.jobs import job_kwargs
from neurodict.common.layout import session_info, spike_source
from neurodict.common.provenance import provenance
from neurodict.export.nwb import write_session_nwb
from neurodict.export.posteriors import posterior_summary
from neurodict.sort.unit_model import descriptions, unit_model


@contextlib.contextmanager
def _numpy_template_similarity() -> Iterator[None]:
    """Have spikeinterface compute template similarity with its numpy kernel, not numba's.

    Its numba kernel (``parallel=True``, not cached) compiles for about 25 s in every process,
    longer than the whole export of a small session; the numpy twin gives the same matrix.
    """
    from spikeinterface.postprocessing import template_similarity as ts

    numba_kernel = ts._compute_similarity_matrix
    ts._compute_similarity_matrix = ts._compute_similarity_matrix_numpy
    try:
        yield
    finally:
        ts._compute_similarity_matrix = numba_kernel


def write_phy(analyzer, folder: str | Path, n_jobs: int = 1) -> Path:
    """A phy folder of `analyzer`'s units, written atomically; no PC features, binary not copied.

    phy's ``params.py`` points at the spike band's own binary file (absolute path), so the
    folder stays small; principal-component features are left out (slow, and phy's feature
    view is then empty).
    """
    from spikeinterface.exporters import export_to_phy

    with atomic_path(folder) as tmp, _numpy_template_similarity():
        export_to_phy(
            analyzer,
            tmp,
            compute_pc_features=False,
            compute_amplitudes=True,
            copy_binary=False,
            add_template_metrics=False,
            verbose=False,
            **job_kwargs(analyzer.recording, n_jobs),
        )
    return Path(folder)


def sorter_model(results: Path, info: dict, sorting_dir: str | Path, n_units: int) -> dict:
    """:func:`neurodict.sort.unit_model.unit_model` where the sorting exported is the sorter's
    own (``<results>/sorting``, with ``sorter.npz`` and ``spikes.npz`` beside it); else {}."""
    if Path(sorting_dir).resolve() != (results / "sorting").resolve() or not all(
        (results / f).exists() for f in ("sorter.npz", "spikes.npz")
    ):
        return {}
    groups = [g["name"] for g in info["groups"]]
    model = unit_model(results / "sorter.npz", results / "spikes.npz", groups, n_units)
    return model if model["presence"].size else {}  # no units, or no epochs


def run(
    results: str | Path,
    sorting_dir: str | Path | None = None,
    probabilities: str | Path | None = None,
    n_jobs: int = 1,
) -> dict:
    """Write ``session.nwb`` and ``phy/`` for the session in `results`.

    Parameters
    ----------
    results : path
        The session's results folder (``session.json``, ``recording.json``, ``spikeband/``,
        ``region_lfp/`` and whatever tables the later steps wrote).
    sorting_dir : path, optional
        A spikeinterface Sorting folder (``spikeinterface.load``-able) at the recording's rate,
        with the unit property ``region`` where known (default: the session's spike source,
        :func:`neurodict.common.layout.spike_source`).
    probabilities : path, optional
        The sorter's ``spikes.npz`` with per-spike posterior probabilities
        (:func:`neurodict.export.posteriors.posterior_summary`); adds ``posterior_mean`` and
        ``posterior_p05`` to the units.

        Where the sorting is the sorter's own (``<results>/sorting``), the units also get its
        model's ``presence``, ``drift_peak_uv`` and ``drift_peak_sd_uv`` per epoch
        (:func:`neurodict.sort.unit_model.unit_model`, from ``sorter.npz`` and ``spikes.npz``).
    n_jobs : int, default: 1
        Worker processes of spikeinterface.

    Returns
    -------
    dict
        The number of units and the quality metrics and columns written.
    """
    started = time.time()
    results = Path(results)
    sorting_dir = sorting_dir or spike_source(results, session_info(results))
    sorting = si.load(sorting_dir)
    posteriors = {} if probabilities is None else posterior_summary(sorting, probabilities)
    info = session_info(results)
    analyzer = analyze_units(sorting, si.load(results / "spikeband"), n_jobs=n_jobs)
    model = sorter_model(results, info, sorting_dir, len(sorting.unit_ids))
    columns = quality_metrics(analyzer) | posteriors | model
    write_session_nwb(
        results / "session.nwb",
        info,
        results,
        si.load(results / "recording.json"),
        sorting,
        analyzer,
        si.load(results / "region_lfp"),
        columns,
        descriptions(info["params"]["sorting"]["epoch_s"]) if model else None,
    )
    write_phy(analyzer, results / "phy", n_jobs=n_jobs)
    figures = {
        "n_units": len(sorting.unit_ids),
        "unit_columns": list(columns),
        "sorting": str(sorting_dir),
        "probabilities": None if probabilities is None else str(probabilities),
    }
    write_json(results / "export.provenance.json", provenance("export", figures, started))
    return figures
