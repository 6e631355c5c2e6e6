"""One NWB file per recording session, written with pynwb.

Contents: the subject (the session file's ``subject:``, where it has one), the electrodes
(group, region, position, channel name, bad), the units (spike times, mean waveform on the main
channel, quality metrics, region, posterior summary when the sorter gave per-spike
probabilities, and for the sorter's own units its model's posterior presence and drift per
epoch), the region LFPs (processing module ``ecephys``) and the workflow's tables (processing
module ``neurodict``: dictionaries, scores, clusters, phase, importance, detection).
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

import numpy as np

from neurodict.common.analyzer import main_channel_templates
from neurodict.common.files import atomic_path, read_table
from neurodict.common.layout import group_regions, session_regions

# results/<session>/*.tsv copied into the `neurodict` processing module, with their meaning.
TABLES = {
    "detection": "Detected spikes per electrode group: counts and rates.",
    "lfp_scores": "Held-out R^2 per region x predictor set x model (blocked cross-validation).",
    "lfp_bands": "Band power of each unit-to-region dictionary filter, per window.",
    "lfp_coherence": "Held-out coherence between measured and predicted LFP per band.",
    "clusters": "Each unit's cluster of LFP signatures and its probability (-1: no LFP link).",
    "clusters_summary": "Per cluster: size, units per home region, mean signature, stability.",
    "phase": "Spike-LFP phase locking per unit x region x band.",
    "importance": "Held-out R^2 lost when a unit or a cluster is left out.",
}


def tsv_table(path: str | Path, name: str, description: str):
    """A DynamicTable of a TSV written by :func:`neurodict.common.files.write_tsv`."""
    from hdmf.common import DynamicTable, VectorData

    frame = read_table(path)
    columns = [
        VectorData(
            name=c,
            description=f"Column '{c}' of {Path(path).name}.",
            data=(
                frame[c].to_numpy()
                if frame[c].dtype.kind in "biuf"
                else frame[c].fillna("").astype(str).tolist()
            ),
        )
        for c in frame.columns
    ]
    return DynamicTable(name=name, description=description, columns=columns)


def dictionary_tables(npz: str | Path) -> list:
    """The learned atoms and the unit-to-region filters of ``lfp_dict.npz`` as two tables."""
    from hdmf.common import DynamicTable, VectorData

    d = np.load(npz)
    lags = d["lags_ms"]
    lag_text = f"lags from {lags[0]:g} to {lags[-1]:g} ms in steps of {lags[1] - lags[0]:g} ms"
    atoms = DynamicTable(
        name="dictionary_atoms",
        description=f"Learned atoms, {lag_text}.",
        columns=[
            VectorData(
                name="waveform",
                description=f"Unit-norm atom over {len(lags)} lags.",
                data=d["atoms"],
            )
        ],
    )
    n_units, n_regions = d["filters"].shape[:2]
    unit, region = np.meshgrid(np.arange(n_units), np.arange(n_regions), indexing="ij")
    filters = DynamicTable(
        name="dictionary_filters",
        description=f"Filter of each unit-to-region link (LFP microvolts per spike), {lag_text}.",
        columns=[
            VectorData(
                name="unit_name",
                description="Unit id in the sorting.",
                data=d["unit_ids"][unit.ravel()].astype(str).tolist(),
            ),
            VectorData(
                name="unit_region",
                description="The unit's home region.",
                data=d["unit_regions"][unit.ravel()].astype(str).tolist(),
            ),
            VectorData(
                name="lfp_region",
                description="The LFP target (region).",
                data=d["regions"][region.ravel()].astype(str).tolist(),
            ),
            VectorData(
                name="filter",
                description="Filter over the lags.",
                data=d["filters"].reshape(n_units * n_regions, -1),
            ),
        ],
    )
    return [atoms, filters]


# session.json's subject keys -> pynwb Subject's arguments (date_of_birth converted to a datetime).
SUBJECT_FIELDS = {
    "id": "subject_id",
    "species": "species",
    "sex": "sex",
    "age": "age",
    "date_of_birth": "date_of_birth",
    "genotype": "genotype",
    "strain": "strain",
    "description": "description",
}


def nwb_subject(subject: dict | None):
    """The pynwb ``Subject`` of session.json's `subject` (None without one).

    ``date_of_birth`` (``YYYY-MM-DD``) becomes midnight UTC of that day: NWB stores a datetime.
    """
    if not subject:
        return None
    from pynwb.file import Subject

    kwargs = {SUBJECT_FIELDS[k]: v for k, v in subject.items() if v is not None}
    if "date_of_birth" in kwargs:
        day = datetime.date.fromisoformat(kwargs["date_of_birth"])
        kwargs["date_of_birth"] = datetime.datetime(
            day.year, day.month, day.day, tzinfo=datetime.UTC
        )
    return Subject(**kwargs)


def session_start(info: dict) -> tuple[datetime.datetime, str]:
    """The session's start time and a note of where it comes from.

    session.json's ``session_start_time`` (ingest records the raw file's modification time);
    a session.json written before it had one: the raw file's modification time now.
    """
    if info.get("session_start_time"):
        started = datetime.datetime.fromisoformat(info["session_start_time"])
        source = info.get("session_start_time_source", "raw file's modification time")
    else:
        mtime = Path(info["raw_path"]).stat().st_mtime
        started = datetime.datetime.fromtimestamp(mtime, tz=datetime.UTC)
        source = "raw file's modification time"
    return started, f"session_start_time is the {source}."


def _electrodes(nwb, info: dict, rec) -> dict:
    """Add a device, one electrode group per session group and every channel of `rec`.

    Returns the row index of each channel id.
    """
    device = nwb.create_device(name="probe", description="Recording probe of the session.")
    groups = {
        g["name"]: nwb.create_electrode_group(
            name=g["name"],
            description=f"Electrode group {g['name']} in {', '.join(group_regions(g))}.",
            location=", ".join(group_regions(g)),
            device=device,
        )
        for g in info["groups"]
    }
    nwb.add_electrode_column(name="channel_name", description="Channel id in the raw file.")
    nwb.add_electrode_column(name="bad", description="Left out of sorting and region LFPs.")
    locations = rec.get_channel_locations()
    for i, channel in enumerate(rec.channel_ids):
        group = str(rec.get_property("group")[i])
        nwb.add_electrode(
            group=groups[group],
            location=str(rec.get_property("region")[i]),
            rel_x=float(locations[i, 0]),
            rel_y=float(locations[i, 1]),
            channel_name=str(channel),
            bad=bool(rec.get_property("bad")[i]),
        )
    return {str(c): i for i, c in enumerate(rec.channel_ids)}


def _units(
    nwb,
    sorting,
    analyzer,
    electrode_of: dict,
    columns: dict[str, np.ndarray],
    descriptions: dict[str, str] | None = None,
) -> None:
    """Add each unit: spike times (s), main-channel mean waveform, `columns` (one value per
    unit, or one row of a 2-D array: a vector per unit) described by `descriptions` where given.
    """
    from pynwb.misc import Units

    templates, channels = main_channel_templates(analyzer)
    channel_ids = analyzer.recording.channel_ids
    fs = sorting.sampling_frequency
    nwb.units = Units(
        name="units",
        description="Sorted units; spike times in seconds.",
        resolution=1.0 / fs,
        waveform_rate=float(fs),
        waveform_unit="microvolts",
    )
    nwb.add_unit_column(name="unit_name", description="Unit id in the sorting.")
    nwb.add_unit_column(name="region", description="The unit's home region.")
    descriptions = descriptions or {}
    for name in columns:
        nwb.add_unit_column(
            name=name,
            description=descriptions.get(
                name, f"Quality metric or summary '{name}' (spikeinterface / neurodict)."
            ),
        )
    regions = (
        sorting.get_property("region")
        if "region" in sorting.get_property_keys()
        else np.full(len(sorting.unit_ids), "unknown")
    )
    for i, unit in enumerate(sorting.unit_ids):
        nwb.add_unit(
            spike_times=sorting.get_unit_spike_train(unit) / fs,
            electrodes=[electrode_of[str(channel_ids[channels[i]])]],
            waveform_mean=templates[i],
            unit_name=str(unit),
            region=str(regions[i]),
            **{name: _cell(values[i]) for name, values in columns.items()},
        )


def _cell(value):
    """A unit's value of a column: a float, or a float vector for a vector column."""
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


def _region_lfp(nwb, region_lfp) -> None:
    from pynwb import TimeSeries

    regions = [str(r) for r in region_lfp.get_property("region")]
    ecephys = nwb.create_processing_module(name="ecephys", description="Region LFPs.")
    ecephys.add(
        TimeSeries(
            name="region_lfp",
            data=region_lfp.get_traces().astype("float32"),
            unit="volts",
            conversion=1e-6,
            rate=float(region_lfp.sampling_frequency),
            starting_time=0.0,
            description=f"LFP of each region (median of its good channels); columns: {regions}.",
            comments="Columns in the order of the description's region list.",
        )
    )


def _segments(nwb, info: dict) -> None:
    """A recording of several segments: one epoch per segment (tag ``segment<i>``), its start
    and stop on the session's timeline, where every time in the file lies (segments back to
    back)."""
    segments = info.get("segments") or []
    if len(segments) < 2:
        return
    fs = info["sampling_frequency_hz"]
    nwb.add_epoch_column("t_start_s", "The segment's first sample on the recording's own clock.")
    for r in segments:
        start = r["start_sample"] / fs
        nwb.add_epoch(
            start_time=start,
            stop_time=start + r["duration_s"],
            tags=[f"segment{r['segment']}"],
            t_start_s=float(r["t_start_s"]),
        )


def write_session_nwb(
    path: str | Path,
    info: dict,
    results: str | Path,
    rec,
    sorting,
    analyzer,
    region_lfp,
    unit_columns: dict[str, np.ndarray],
    unit_descriptions: dict[str, str] | None = None,
) -> Path:
    """Write ``session.nwb`` atomically.

    Parameters
    ----------
    path : path
        The file to write.
    info : dict
        The resolved session (``session.json``): its ``subject`` becomes the NWB Subject
        (:func:`nwb_subject`), its ``session_start_time`` the file's (:func:`session_start`),
        its ``segments`` the epochs (:func:`_segments`).
    results : path
        The session's results folder, whose ``*.tsv`` and ``lfp_dict.npz`` go into the
        ``neurodict`` processing module where present.
    rec : BaseRecording
        The ingested recording (channel properties group, region, bad).
    sorting : BaseSorting
    analyzer : SortingAnalyzer
        Of `sorting` on the spike band, with templates (:func:`analyze_units`).
    region_lfp : BaseRecording
        One channel per region (channel property region).
    unit_columns : dict
        Name -> ndarray of shape (n_units,), quality metrics and posterior summary, or of
        shape (n_units, n), a vector per unit (the sorter's model per epoch).
    unit_descriptions : dict, optional
        Name -> description of a column of `unit_columns` (default: a generic one).
    """
    from pynwb import NWBHDF5IO, NWBFile

    results = Path(results)
    started, start_note = session_start(info)
    regions = sorted(session_regions(info))
    nwb = NWBFile(
        session_description=f"neurodict session {info['name']} ({info['format']} "
        f"recording, regions {regions}).",
        identifier=str(uuid.uuid4()),
        session_id=str(info["name"]),
        session_start_time=started,
        notes=start_note,
        subject=nwb_subject(info.get("subject")),
    )
    electrode_of = _electrodes(nwb, info, rec)
    _units(nwb, sorting, analyzer, electrode_of, unit_columns, unit_descriptions)
    _region_lfp(nwb, region_lfp)
    _segments(nwb, info)
    module = nwb.create_processing_module(
        name="neurodict",
        description="Spike-to-LFP dictionaries, their scores and the unit clusters.",
    )
    if (results / "lfp_dict.npz").exists():
        for table in dictionary_tables(results / "lfp_dict.npz"):
            module.add(table)
    for name, description in TABLES.items():
        if (results / f"{name}.tsv").exists():
            module.add(tsv_table(results / f"{name}.tsv", name, description))
    with atomic_path(path) as tmp, NWBHDF5IO(tmp, "w") as io:
        io.write(nwb)
    return Path(path)
