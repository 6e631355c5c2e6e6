"""Synthetic multi-region sessions with ground truth (MODELS.md section 5).

Per region, one electrode group (a tetrode by default) whose spikes and noise come from
spikeinterface's ground-truth generator. Per region, an LFP

    y_r(t) = sum_n (u_n * f_{n,r})(t) + theta_r(t) + gamma_r(t) + pink_r(t)

built at ``fs_lfp_hz`` from the true binned spike trains ``u_n`` and known filters
``f_{n,r} = g_n h_{phi(n),r}``: every unit belongs to one of a few prototype families ``phi(n)``,
drawn independently of its home region, so the true unit clusters mix regions. A family's filter
to a region is a Gabor wavelet in the family's band with a region-specific gain (zero for regions
the family does not reach), lag and phase. The LFP is resampled to the wideband rate, added to
every channel of the region's group with mains hum, and written as int16 raw binary with a
session YAML, so the pipeline itself must separate spike band and LFP band.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import probeinterface as pi
import scipy.signal
import spikeinterface.core as sc
import yaml
from tqdm import tqdm

from neurodict.common.errors import InputError
from neurodict.common.files import atomic_path

REGION_NAMES = (
    "CA1",
    "PFC",
    "VTA",
    "AMY",
    "NAc",
    "THAL",
    "MD",
    "BLA",
    "DG",
    "CA3",
    "S1",
    "M1",
    "V1",
    "LHb",
    "SNr",
    "STR",
)
# Prototype families: (centre frequency in Hz, Gaussian envelope width in ms).
FAMILY_BANDS = ((7.0, 60.0), (35.0, 15.0), (2.5, 90.0), (18.0, 30.0))
GAIN_TO_UV = 0.195  # int16 step in microvolts, as on common headstages


@dataclass(frozen=True)
class SynthSpec:
    """Size and realism of a synthetic session; every field has a small default.

    Attributes
    ----------
    n_regions : int
        Brain regions, one electrode group each (names from REGION_NAMES, then R16, R17, ...).
    units_per_region : int
        Ground-truth units per group.
    channels_per_group : int
        4 for a tetrode.
    duration_s, fs_hz, fs_lfp_hz : float
        Length, wideband rate and LFP rate (fs_hz must be a multiple of fs_lfp_hz).
    n_families : int
        Prototype filter families (at most len(FAMILY_BANDS)); the true unit clusters.
    lag_ms : float
        Filters span -lag_ms .. +lag_ms.
    filter_peak_uv : float
        Peak LFP deflection per spike of a unit with gain 1, in microvolts.
    noise_level_uv : float
        Spike-band noise of the generator (its `noise_levels`).
    theta_uv, gamma_uv, pink_uv, mains_uv : float
        Amplitudes of the background LFP parts not driven by the units, and of mains hum.
    mains_hz : int
        50 or 60.
    firing_rate_hz : tuple of float
        Range of unit firing rates.
    n_segments : int
        Recording segments, as runs of one session with pauses: the generated ``duration_s``
        is cut into equal parts, the last ``gap_s`` of each part but the last is not recorded
        (its spikes and LFP are lost, as in a paused acquisition), and each segment is written
        to its own raw file.
    gap_s : float
        The pause between consecutive segments, in s.
    seed : int
    """

    n_regions: int = 4
    units_per_region: int = 5
    channels_per_group: int = 4
    duration_s: float = 60.0
    fs_hz: float = 20000.0
    fs_lfp_hz: float = 1000.0
    n_families: int = 3
    lag_ms: float = 200.0
    filter_peak_uv: float = 20.0
    noise_level_uv: float = 8.0
    theta_uv: float = 40.0
    gamma_uv: float = 10.0
    pink_uv: float = 20.0
    mains_uv: float = 20.0
    mains_hz: int = 50
    firing_rate_hz: tuple[float, float] = (3.0, 20.0)
    n_segments: int = 1
    gap_s: float = 5.0
    seed: int = 0


def region_names(n_regions: int) -> list[str]:
    """Names of the first `n_regions` regions."""
    return [REGION_NAMES[i] if i < len(REGION_NAMES) else f"R{i}" for i in range(n_regions)]


def lags_ms(spec: SynthSpec) -> np.ndarray:
    """Filter lags in ms, shape (n_lags,), from -lag_ms to +lag_ms at the LFP rate."""
    step_ms = 1000.0 / spec.fs_lfp_hz
    n = int(round(spec.lag_ms / step_ms))
    return np.arange(-n, n + 1) * step_ms


def family_filters(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Prototype filters h_{f,r}(tau), shape (n_families, n_regions, n_lags), microvolts per spike.

    Each family reaches a random subset of regions (at least one); a reached region gets a gain
    in [0.5, 1.5], a lag in [-40, 40] ms and a carrier phase in [0, 2 pi).
    """
    tau_s = lags_ms(spec) / 1000.0
    out = np.zeros((spec.n_families, spec.n_regions, tau_s.size))
    for f in range(spec.n_families):
        freq_hz, width_ms = FAMILY_BANDS[f]
        reached = rng.random(spec.n_regions) < 0.7
        reached[rng.integers(spec.n_regions)] = True
        for r in np.flatnonzero(reached):
            shift_s = rng.uniform(-0.04, 0.04)
            envelope = np.exp(-0.5 * ((tau_s - shift_s) / (width_ms / 1000.0)) ** 2)
            carrier = np.cos(2 * np.pi * freq_hz * (tau_s - shift_s) + rng.uniform(0, 2 * np.pi))
            h = envelope * carrier
            out[f, r] = rng.uniform(0.5, 1.5) * spec.filter_peak_uv * h / np.abs(h).max()
    return out


def bin_spikes(
    spike_samples: list[np.ndarray], fs_hz: float, fs_lfp_hz: float, n_bins: int
) -> np.ndarray:
    """Spike counts per LFP bin, shape (n_units, n_bins), float32."""
    factor = fs_hz / fs_lfp_hz
    u = np.zeros((len(spike_samples), n_bins), dtype="float32")
    for n, s in enumerate(spike_samples):
        np.add.at(u[n], np.minimum((s / factor).astype(np.int64), n_bins - 1), 1.0)
    return u


def pink_noise(n: int, rng: np.random.Generator, fs_hz: float, min_hz: float = 0.5) -> np.ndarray:
    """Unit-variance noise with a 1/f power spectrum above `min_hz`, shape (n,)."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs_hz)
    amp = 1.0 / np.sqrt(np.maximum(freqs, min_hz))
    x = np.fft.irfft(
        amp * (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)), n
    )
    return x / x.std()


def background_lfp(spec: SynthSpec, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Theta (6-9 Hz), gamma (30-50 Hz) and 1/f parts not driven by units, (n_regions, n_bins)."""
    t_s = np.arange(n_bins) / spec.fs_lfp_hz
    out = np.empty((spec.n_regions, n_bins))
    for r in range(spec.n_regions):
        theta = np.sin(2 * np.pi * rng.uniform(6, 9) * t_s + rng.uniform(0, 2 * np.pi))
        gamma_envelope = 0.5 * (1 + theta)  # gamma nested in theta, as in hippocampus
        gamma = gamma_envelope * np.sin(2 * np.pi * rng.uniform(30, 50) * t_s)
        out[r] = (
            spec.theta_uv * theta
            + spec.gamma_uv * gamma
            + spec.pink_uv * pink_noise(n_bins, rng, spec.fs_lfp_hz)
        )
    return out


def spike_lfp(u: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """sum_n (u_n * f_{n,r})(t) for centred (non-causal) filters, shape (n_regions, n_bins).

    Parameters
    ----------
    u : ndarray of shape (n_units, n_bins)
    filters : ndarray of shape (n_units, n_regions, n_lags), n_lags odd, lag 0 in the middle.
    """
    n_units, n_regions, n_lags = filters.shape
    half = n_lags // 2
    out = np.zeros((n_regions, u.shape[1]))
    for r in range(n_regions):
        full = scipy.signal.oaconvolve(u, filters[:, r], mode="full", axes=1).sum(axis=0)
        out[r] = full[half : half + u.shape[1]]
    return out


def _session_yaml(spec: SynthSpec, regions: list[str]) -> dict:
    c = spec.channels_per_group
    segments = [f"recording_seg{i}.raw" for i in range(spec.n_segments)]
    return {
        "raw_path": "recording.raw" if spec.n_segments == 1 else segments,
        "format": "binary",
        "sampling_frequency_hz": spec.fs_hz,
        "num_channels": spec.n_regions * c,
        "dtype": "int16",
        "gain_to_uv": GAIN_TO_UV,
        "probe": {"file": "probe.json"},
        "groups": [
            {"name": f"{r}_tt", "region": r, "channels": list(range(i * c, (i + 1) * c))}
            for i, r in enumerate(regions)
        ],
        "bad_channels": "auto",
        "mains_hz": spec.mains_hz,
        "ground_truth_sorting": "truth_sorting",
        "events": "events.tsv",
        "subject": {
            "id": "synth-rat",
            "species": "Rattus norvegicus",
            "sex": "U",
            "age": "P90D",
            "description": "Synthetic animal of `neurodict synth` (regions named as in a rat).",
        },
    }


def _events_tsv(duration_s: float) -> str:
    """The behavioural conditions as an events table (BIDS-like): a baseline half, then a
    task half of the recorded `duration_s`."""
    half_s = duration_s / 2
    return (
        "onset_s\tduration_s\tcondition\n"
        f"0\t{half_s:g}\tbaseline\n{half_s:g}\t{duration_s - half_s:g}\ttask\n"
    )


def segment_ranges(spec: SynthSpec, n_samples: int) -> list[tuple[int, int]]:
    """The recorded samples ``[a, b)`` of each segment of the generated `n_samples`: equal
    parts, each but the last without its final ``gap_s``, cut to whole LFP samples."""
    up = int(spec.fs_hz // spec.fs_lfp_hz)
    edges = np.linspace(0, n_samples, spec.n_segments + 1).astype(int) // up * up
    gap = int(round(spec.gap_s * spec.fs_lfp_hz)) * up
    out = [
        (int(a), int(b) - (gap if i < spec.n_segments - 1 else 0))
        for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]
    if spec.n_segments > 1 and any(b - a <= 0 for a, b in out):
        raise InputError(
            f"'gap_s': expected pauses shorter than the {spec.n_segments} segments of "
            f"{spec.duration_s:g} s; got {spec.gap_s!r}."
        )
    return [(a, b - (b - a) % up) for a, b in out]


def _split_raw(folder: Path, spec: SynthSpec, kept: list[tuple[int, int]]) -> None:
    """``recording.raw`` cut into ``recording_seg<i>.raw``, the recorded samples of each."""
    n_channels = spec.n_regions * spec.channels_per_group
    raw = np.memmap(folder / "recording.raw", dtype="<i2", mode="r").reshape(-1, n_channels)
    for i, (a, b) in enumerate(kept):
        np.asarray(raw[a:b]).tofile(folder / f"recording_seg{i}.raw")
    del raw
    (folder / "recording.raw").unlink()


def _recorded(trains, lfp, kept, up: int):
    """The spike trains and LFP bins of the recorded samples `kept`, segments back to back."""
    out, start = [[] for _ in trains], 0
    for a, b in kept:
        for n, t in enumerate(trains):
            out[n].append(t[(t >= a) & (t < b)] - a + start)
        start += b - a
    lfp = np.concatenate([lfp[:, a // up : b // up] for a, b in kept], axis=1)
    return [np.concatenate(t) for t in out], lfp


def generate_session(
    out_dir: str | Path, spec: SynthSpec = SynthSpec(), progress: bool = True
) -> Path:
    """Write a synthetic session with its truth into `out_dir`; return the session YAML path.

    Files: ``recording.raw`` (int16, interleaved; with several segments
    ``recording_seg<i>.raw``, one per segment, :func:`segment_ranges`), ``probe.json``,
    ``session.yaml``,
    ``events.tsv`` (the conditions), ``truth_sorting/`` (spikeinterface Sorting, unit
    properties region, group, family),
    ``truth.npz`` (filters, lags_ms, unit_ids, unit_region, unit_family, family_filters,
    unit_gain, regions, fs_lfp_hz, lfp_uv: the region LFPs of shape (n_regions, n_bins) before
    resampling) and ``spec.json``. The folder appears complete or not at all.

    Raises
    ------
    ValueError
        When fs_hz is not a multiple of fs_lfp_hz or n_families exceeds the prototypes.
    """
    if spec.fs_hz % spec.fs_lfp_hz:
        raise InputError(
            f"'fs_hz': expected a multiple of fs_lfp_hz={spec.fs_lfp_hz}; got {spec.fs_hz!r}."
        )
    if not 1 <= spec.n_families <= len(FAMILY_BANDS):
        raise InputError(f"'n_families': expected 1..{len(FAMILY_BANDS)}; got {spec.n_families!r}.")
    rng = np.random.default_rng(spec.seed)
    regions = region_names(spec.n_regions)
    n_bins = int(spec.duration_s * spec.fs_lfp_hz)
    recs, sortings, probes = [], [], pi.ProbeGroup()
    for i in range(spec.n_regions):
        rates = rng.uniform(*spec.firing_rate_hz, size=spec.units_per_region)
        rec, sorting = sc.generate_ground_truth_recording(
            durations=[spec.duration_s],
            sampling_frequency=spec.fs_hz,
            num_channels=spec.channels_per_group,
            num_units=spec.units_per_region,
            generate_sorting_kwargs={"firing_rates": rates, "refractory_period_ms": 2.0},
            noise_kwargs={"noise_levels": spec.noise_level_uv, "strategy": "on_the_fly"},
            seed=spec.seed * 1000 + i,
        )
        probe = rec.get_probe().copy()
        probe.move([300.0 * i, 0.0])
        probe.set_device_channel_indices(
            np.arange(i * spec.channels_per_group, (i + 1) * spec.channels_per_group)
        )
        probes.add_probe(probe)
        recs.append(rec)
        sortings.append(sorting)
    trains = [s.get_unit_spike_train(u) for s in sortings for u in s.unit_ids]
    unit_ids = np.array(
        [f"{r}_u{u}" for r, s in zip(regions, sortings, strict=True) for u in s.unit_ids]
    )
    unit_region = np.repeat(regions, spec.units_per_region)
    unit_family = rng.integers(spec.n_families, size=unit_ids.size)
    unit_gain = rng.uniform(0.7, 1.3, size=unit_ids.size)
    h = family_filters(spec, rng)
    filters = unit_gain[:, None, None] * h[unit_family]
    u = bin_spikes(trains, spec.fs_hz, spec.fs_lfp_hz, n_bins)
    lfp = spike_lfp(u, filters) + background_lfp(spec, n_bins, rng)

    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        _write_wideband(tmp / "recording.raw", recs, lfp, spec, rng, progress)
        kept = segment_ranges(spec, recs[0].get_num_samples())
        if spec.n_segments > 1:
            _split_raw(tmp, spec, kept)
            trains, lfp = _recorded(trains, lfp, kept, int(spec.fs_hz // spec.fs_lfp_hz))
        pi.write_probeinterface(tmp / "probe.json", probes)
        truth = sc.NumpySorting.from_unit_dict(
            [{uid: t for uid, t in zip(unit_ids, trains, strict=True)}], spec.fs_hz
        )
        truth.set_property("region", unit_region)
        truth.set_property("group", np.array([f"{r}_tt" for r in unit_region]))
        truth.set_property("family", unit_family)
        truth.save(folder=tmp / "truth_sorting")
        np.savez(
            tmp / "truth.npz",
            filters=filters.astype("float32"),
            lags_ms=lags_ms(spec),
            unit_ids=unit_ids,
            unit_region=unit_region,
            unit_family=unit_family,
            unit_gain=unit_gain,
            family_filters=h.astype("float32"),
            regions=np.array(regions),
            fs_lfp_hz=spec.fs_lfp_hz,
            lfp_uv=lfp.astype("float32"),
        )
        (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
        recorded_s = sum(b - a for a, b in kept) / spec.fs_hz
        (tmp / "events.tsv").write_text(_events_tsv(recorded_s))
        (tmp / "session.yaml").write_text(
            "# Synthetic session written by `neurodict synth`; truth in truth.npz.\n"
            + yaml.safe_dump(_session_yaml(spec, regions), sort_keys=False)
        )
    return out_dir / "session.yaml"


def _write_wideband(
    path: Path,
    recs,
    lfp: np.ndarray,
    spec: SynthSpec,
    rng: np.random.Generator,
    progress: bool,
    chunk_s: float = 10.0,
) -> None:
    """Spikes + noise + upsampled LFP + mains hum, chunk by chunk, as int16 microvolt steps."""
    up = int(spec.fs_hz // spec.fs_lfp_hz)
    c = spec.channels_per_group
    channel_gain = rng.uniform(0.9, 1.1, size=(spec.n_regions, c))
    mains_phase = rng.uniform(0, 2 * np.pi)
    n_total = recs[0].get_num_samples()
    chunk = int(chunk_s * spec.fs_hz)
    margin = 100  # LFP samples of context for the resampling filter
    with open(path, "wb") as f:
        for start in tqdm(range(0, n_total, chunk), desc="synth: wideband", disable=not progress):
            end = min(start + chunk, n_total)
            b0, b1 = start // up, -(-end // up)
            lo, hi = max(b0 - margin, 0), min(b1 + margin, lfp.shape[1])
            lfp_up = scipy.signal.resample_poly(lfp[:, lo:hi], up, 1, axis=1)
            lfp_up = lfp_up[:, (start - lo * up) : (start - lo * up) + end - start]
            t_s = np.arange(start, end) / spec.fs_hz
            hum = spec.mains_uv * np.sin(2 * np.pi * spec.mains_hz * t_s + mains_phase)
            block = np.empty((end - start, spec.n_regions * c), dtype="float32")
            for r, rec in enumerate(recs):
                spikes = rec.get_traces(start_frame=start, end_frame=end)
                block[:, r * c : (r + 1) * c] = (
                    spikes + channel_gain[r] * lfp_up[r][:, None] + hum[:, None]
                )
            np.clip(np.round(block / GAIN_TO_UV), -32768, 32767).astype("<i2").tofile(f)
