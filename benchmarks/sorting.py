"""Sorting accuracy, speed and memory: neurodict against its peers on the same recordings.

Recordings (all generated or read by code outside this project): spikeinterface ground truth
(a tetrode with 8 units and a 32-channel probe with 20 units, at the generator's default noise
and at ``noise_levels`` 9, several seeds; the probe also as two segments, 40 + 20 s, which the
baselines do not take), a 32-channel probe whose two nearest units fire together (sync32:
10 % of one unit's spikes with one of the other's within 0.27 ms), a drifting recording, a
MEArec biophysical tetrode
(NEURON-simulated layer-5 cells) and a MEArec Neuronexus-32 with 20 cells (where MEArec, NEURON
and LFPy are installed), a hybrid recording (known units injected into the locust tetrode's
noise) and the real locust tetrode (no ground truth).

Sorters, each run in its own process under ``/usr/bin/time -v`` (wall time, peak memory, user
and system CPU seconds in the JSON):
neurodict (with its template-matching pass, and without it: neurodict-nomatch; any variant of its
parameters as ``neurodict:key=value[:key=value...]``),
spykingcircus2, tridesclous2, mountainsort5 and kilosort4 (where installed) through
``spikeinterface.sorters.run_sorter``, and the classic baselines k-means and a Gaussian mixture
on 2 principal components per channel, and the mixture on DB-KSVD codes (dbksvd-gmm: the
features baseline of MODELS.md 1b), with neurodict's detection and alignment, given the true
number of units (an advantage the others do not get).

The peers need the ``bench`` extra (hdbscan for spykingcircus2 and tridesclous2) and a CPU
build of torch (``pip install torch==2.13.0``, before kilosort4): spykingcircus2's default
motion correction on the probes (DREDge) and kilosort4 fail without it. spikeinterface's peak
detection then imports torch in every sorter's process (about 200 MB of each peak).

Each sorter first sorts a 10-second 32-channel recording untimed (its numba kernels compiled
and cached, as after installation; the warm-up's time printed apart).

Scores: ``compare_sorter_to_ground_truth`` with its defaults (mean accuracy over ground-truth
units, units well detected at accuracy >= 0.8, false-positive units); for neurodict also the
false-positive units among its single units (those not flagged multi-unit). Time and memory are
printed as ratios to neurodict's on the same recording.

Usage::

    python benchmarks/sorting.py                      # the matrix below (about an hour, 2 cores)
    python benchmarks/sorting.py --quick              # tetrodes only, one seed
    python benchmarks/sorting.py --large --recordings probe64-n5-s1 drift64 np384-1min
    python benchmarks/sorting.py --sorters neurodict kmeans --recordings tetrode-n5-s1
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOCUST = REPO.parent / "shared" / "data" / "locust" / "locust_trial_01.raw"
PEERS = ["spykingcircus2", "tridesclous2", "mountainsort5", "kilosort4"]
BASELINES = ["kmeans", "gmm", "dbksvd-gmm"]


def recordings(quick: bool, large: bool = False) -> dict[str, dict]:
    """Name -> how to make the recording (`large`: the probe-scale ones too)."""
    out = {}
    seeds = [1] if quick else [1, 2, 3]
    for noise in (5.0, 9.0):
        for seed in seeds:
            out[f"tetrode-n{noise:g}-s{seed}"] = dict(
                kind="gt", channels=4, units=8, duration=60.0, noise=noise, seed=seed
            )
    if not quick:
        out["probe32-n5-s1"] = dict(
            kind="gt", channels=32, units=20, duration=60.0, noise=5.0, seed=1
        )
        out["probe32-n9-s1"] = dict(
            kind="gt", channels=32, units=20, duration=60.0, noise=9.0, seed=1
        )
        # two segments (runs of one session with a pause), 40 + 20 s: each sorter's own
        # handling of segments (spikeinterface passes them to those that take them)
        out["probe32-2seg"] = dict(
            kind="gt", channels=32, units=20, duration=[40.0, 20.0], noise=5.0, seed=1
        )
        out["tetrode-n5-300s"] = dict(
            kind="gt", channels=4, units=8, duration=300.0, noise=5.0, seed=1
        )
        out["drift16"] = dict(kind="drift", seed=5)
        # the two nearest of six units fire together (synchrony): 10 % of the first one's
        # spikes each with one of the second's within 0.27 ms, one detection for the two
        out["sync32"] = dict(
            kind="sync", channels=32, units=6, duration=120.0, noise=5.0, seed=5,
            fraction=0.1, lag_ms=0.27,
        )  # fmt: skip
    if large:  # probe scale (issue 16): 64 channels, a drifting dense shank, a Neuropixels 1.0
        for noise in (5.0, 9.0):  # more realisations of the 32-channel shank
            for seed in (2, 3):
                out[f"probe32-n{noise:g}-s{seed}"] = dict(
                    kind="gt", channels=32, units=20, duration=60.0, noise=noise, seed=seed
                )
        for seed in (1, 2):
            out[f"probe64-n5-s{seed}"] = dict(
                kind="gt", channels=64, units=50, duration=300.0, noise=5.0, seed=seed
            )
        out["drift64"] = dict(kind="drift", seed=5, rows=32, units=25, duration=300.0)
        out["np384"] = dict(
            kind="gt", channels=384, units=150, duration=600.0, noise=5.0, seed=1, probe="np1"
        )
        # the same shank and units for one minute: the three sorters' runs of it take some
        # eleven minutes of this 2-core machine (neurodict's peak 2.2 GB, its snippets held on
        # their neighbourhoods' channels; on every channel it was 5.8 GB)
        out["np384-1min"] = dict(
            kind="gt", channels=384, units=150, duration=60.0, noise=5.0, seed=1, probe="np1"
        )
        if mearec_available():
            out["mearec-tetrode"] = dict(kind="mearec", probe="tetrode-mea-l", units=8, seed=4)
            out["mearec-nn32"] = dict(kind="mearec", probe="Neuronexus-32", units=20, seed=4)
        if LOCUST.exists():
            out["hybrid-locust"] = dict(kind="hybrid", seed=3)
            out["locust"] = dict(kind="locust")
    return out


def mearec_available() -> bool:
    """MEArec with NEURON and LFPy (``pip install MEArec 'neuron<9' LFPy``; the environment's
    ``bin/`` on PATH for ``nrnivmodl``)."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("MEArec", "neuron", "LFPy"))


def mearec_recording(spec: dict, folder: Path):
    """A biophysical recording: MEArec's templates of its 13 layer-5 cell models (NEURON,
    15 positions each) on `spec["probe"]`, 60 s, 3/4 excitatory cells, noise 10 uV; read
    back by spikeinterface. Templates are kept in `folder` and reused."""
    import os

    import MEArec as mr
    import spikeinterface.extractors as se

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    templates = folder / f"templates-{spec['probe']}.h5"
    if not templates.exists():
        params = mr.get_default_templates_params() | {
            "probe": spec["probe"],
            "n": 15,
            "seed": spec["seed"],
            "min_amp": 30,
        }
        gen = mr.gen_templates(
            mr.get_default_cell_models_folder(), params=params, n_jobs=2, verbose=False
        )
        mr.save_template_generator(gen, filename=str(templates))
    params = mr.get_default_recordings_params()
    params["spiketrains"] |= {
        "n_exc": spec["units"] * 3 // 4,
        "n_inh": spec["units"] - spec["units"] * 3 // 4,
        "duration": 60.0,
    }
    params["templates"] |= {"min_amp": 30, "min_dist": 15}
    params["recordings"] |= {"noise_level": 10}
    params["seeds"] = {
        k: spec["seed"] for k in ("spiketrains", "templates", "convolution", "noise")
    }
    gen = mr.gen_recordings(templates=str(templates), params=params, verbose=False)
    mr.save_recording_generator(gen, filename=str(folder / "mearec.h5"))
    return se.read_mearec(folder / "mearec.h5")


def synchronous_recording(spec: dict):
    """A generated shank (``channels``, ``units``, ``duration``, ``noise``, ``seed``) whose
    two nearest units fire together: a ``fraction`` of the first one's spikes, drawn at
    random, each has one of the second's at a lag drawn uniformly within ``±lag_ms`` (whole
    samples), and the second's own spikes within its refractory period (4 ms) of those are
    left out. The rest as spikeinterface's generator makes it (30 kHz). Returns the
    recording and the ground truth."""
    import spikeinterface.core as sc

    fs, duration, seed = 30000.0, float(spec["duration"]), spec["seed"]
    kwargs = dict(
        durations=[duration],
        sampling_frequency=fs,
        num_channels=spec["channels"],
        num_units=spec["units"],
        seed=seed,
        noise_kwargs={"noise_levels": spec["noise"], "strategy": "on_the_fly"},
    )
    _, plain = sc.generate_ground_truth_recording(**kwargs)
    where = plain.get_property("gt_unit_locations")
    gap = np.linalg.norm(where[:, None] - where[None], axis=2) + np.diag(
        np.full(len(where), np.inf)
    )
    first, second = np.unravel_index(np.argmin(gap), gap.shape)
    rng = np.random.default_rng(seed)
    trains = {u: plain.get_unit_spike_train(u) for u in plain.unit_ids}
    a, b = plain.unit_ids[first], plain.unit_ids[second]
    lag = int(round(spec["lag_ms"] * fs / 1000.0))
    picked = rng.choice(trains[a], size=int(spec["fraction"] * trains[a].size), replace=False)
    together = np.sort(picked + rng.integers(-lag, lag + 1, picked.size))
    together = together[(together > 0) & (together < duration * fs - 1)]
    refractory = int(0.004 * fs)
    near = np.searchsorted(together, trains[b])
    apart = np.minimum(
        np.abs(trains[b] - together[np.clip(near, 0, together.size - 1)]),
        np.abs(trains[b] - together[np.clip(near - 1, 0, together.size - 1)]),
    )
    trains[b] = np.sort(np.r_[trains[b][apart >= refractory], together])
    sorting = sc.NumpySorting.from_unit_dict([trains], sampling_frequency=fs)
    return sc.generate_ground_truth_recording(**kwargs, sorting=sorting)


def np1_probe():
    """A Neuropixels 1.0 shank's geometry: 384 contacts, two per 20 um row alternating between
    the columns at 11/43 and 27/59 um, 3820 um long (probeinterface's generator: its library
    needs a download)."""
    from probeinterface import generate_multi_columns_probe

    probe = generate_multi_columns_probe(
        num_columns=4,
        num_contact_per_column=96,
        xpitch=16,
        ypitch=40,
        y_shift_per_column=[0, 20, 0, 20],
        contact_shapes="square",
        contact_shape_params={"width": 12},
    )
    probe.set_device_channel_indices(np.arange(384))
    return probe


def make_recording(spec: dict, folder: Path):
    """Write the recording (binary folder) and its ground truth (or None); return both paths."""
    import spikeinterface.core as sc

    if spec["kind"] == "gt":
        rec, gt = sc.generate_ground_truth_recording(
            durations=list(np.atleast_1d(spec["duration"]).astype(float)),
            probe=np1_probe() if spec.get("probe") == "np1" else None,
            num_channels=spec["channels"],
            num_units=spec["units"],
            seed=spec["seed"],
            noise_kwargs={"noise_levels": spec["noise"], "strategy": "on_the_fly"},
        )
    elif spec["kind"] == "sync":
        rec, gt = synchronous_recording(spec)
    elif spec["kind"] == "mearec":
        rec, gt = mearec_recording(spec, folder)
    elif spec["kind"] == "drift":
        from spikeinterface.generation import generate_drifting_recording

        _, rec, gt = generate_drifting_recording(
            num_units=spec.get("units", 8),
            duration=spec.get("duration", 120.0),
            sampling_frequency=30000.0,
            probe_name=None,
            generate_probe_kwargs={
                "num_columns": 2,
                "num_contact_per_column": spec.get("rows", 8),
                "xpitch": 20,
                "ypitch": 20,
                "contact_shapes": "circle",
                "contact_shape_params": {"radius": 6},
            },
            seed=spec["seed"],
        )
    else:
        # raw int16 counts without a known gain: taken as microvolts by every sorter alike
        rec = sc.read_binary(
            LOCUST,
            sampling_frequency=15000.0,
            dtype="int16",
            num_channels=4,
            gain_to_uV=1.0,
            offset_to_uV=0.0,
        ).astype("float32")
        rec.set_dummy_probe_from_locations(np.array([[0, 0], [20, 0], [0, 20], [20, 20.0]]))
        gt = None
        if spec["kind"] == "hybrid":
            from spikeinterface.generation import generate_hybrid_recording

            # templates of 600-1500 (peaks of about 200-700 counts against a spike-band noise
            # of about 20): the generator's default amplitudes vanish in this recording's scale
            rec, gt = generate_hybrid_recording(
                rec,
                generate_sorting_kwargs={
                    "num_units": 5,
                    "firing_rates": 10,
                    "refractory_period_ms": 4.0,
                    "seed": spec["seed"],
                },
                generate_unit_locations_kwargs={  # the generator's defaults, seeded
                    "margin_um": 10.0,
                    "minimum_z": 5.0,
                    "maximum_z": 50.0,
                    "minimum_distance": 20,
                    "seed": spec["seed"],
                },
                generate_templates_kwargs={
                    "ms_before": 1.0,
                    "ms_after": 3.0,
                    "unit_params": {"alpha": (600.0, 1500.0)},
                },
                seed=spec["seed"],
            )
    rec = rec.save(folder=folder / "rec", overwrite=True, progress_bar=False)
    gt_path = None
    if gt is not None:
        gt_path = folder / "gt"
        sc.NumpySorting.from_sorting(gt).save(folder=gt_path, overwrite=True)
    return folder / "rec", gt_path


def run_one(sorter: str, rec_path: Path, out: Path) -> None:
    """Sort in this process (called under /usr/bin/time by :func:`timed`)."""
    import spikeinterface.core as sc

    rec = sc.load(rec_path)
    if sorter in BASELINES:
        sorting = baseline(sorter, rec, int(sys.argv[-1]))
    else:
        import spikeinterface.sorters as ss

        import neurodict  # noqa: F401  (registers the sorter)

        params = {}
        if sorter.startswith("neurodict"):
            sorter, params = "neurodict", {"n_jobs": 2} | variant_params(sorter)
        if sorter in ("spykingcircus2", "tridesclous2"):
            params = {"job_kwargs": {"n_jobs": 2}}
        if sorter == "kilosort4":  # its neighbourhoods default to 10 channels; CPU torch
            n = rec.get_num_channels()
            params = {
                "nearest_chans": min(10, n),
                "nearest_templates": min(100, n),
                "do_CAR": n > 8,
                "torch_device": "cpu",
            }
        sorting = ss.run_sorter(
            sorter, rec, folder=out / "work", remove_existing_folder=True, verbose=False, **params
        )
    sc.NumpySorting.from_sorting(sorting).save(folder=out / "sorting", overwrite=True)
    if sorter == "neurodict":
        np.save(out / "multi_unit.npy", np.asarray(sorting.get_property("multi_unit"), bool))


def variant_params(name: str) -> dict:
    """The sorter parameters a neurodict variant's name gives: ``neurodict-nomatch`` (the
    model's own assignment, no matching pass) or ``neurodict:key=value[:key=value...]``, each
    value read as JSON (``neurodict:neighbourhood_spacing=1.0``)."""
    if name == "neurodict-nomatch":
        return {"template_matching": False}
    pairs = (item.split("=", 1) for item in name.split(":")[1:])
    return {key: json.loads(value) for key, value in pairs}


def baseline(kind: str, rec, n_units: int):
    """k-means or a Gaussian mixture on 2 PCs per channel, or the mixture on DB-KSVD codes
    (2 atoms learned from every channel of every spike: as many features per channel as the
    PCs; with 8 atoms, 2 or 3 per waveform, the mixture found 0-2 of 8 units on the tetrodes),
    neurodict's detection."""
    import spikeinterface.core as sc
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture
    from spikeinterface.preprocessing import bandpass_filter

    from neurodict.detect import peaks as detect
    from neurodict.sort import dbksvd, snippets

    rec = bandpass_filter(rec, freq_min=300.0, freq_max=min(6000.0, 0.45 * rec.sampling_frequency))
    noise = sc.get_noise_levels(rec, return_in_uV=False)
    peaks = detect.detect_group_peaks(
        rec, {"threshold_sigma": 4.0, "peak_sign": "neg", "dead_time_ms": 1.0, "radius_um": 100.0}
    )
    x, samples = snippets.extract(rec, peaks["sample_index"], 0.6, 1.0, 0.2, noise)
    if kind == "dbksvd-gmm":
        N, M, T = x.shape
        rows = x.reshape(N * M, T).astype(np.float32)
        atoms = dbksvd.learn(dbksvd.chunks_of(rows, 65536), 2, 2, 10).atoms
        f = dbksvd.dense_codes(*dbksvd.encode(atoms, rows, 2), 2).reshape(N, M * 2)
    else:
        feats = []
        for m in range(x.shape[1]):
            xm = x[:, m] - x[:, m].mean(0)
            feats.append(xm @ np.linalg.svd(xm, full_matrices=False)[2][:2].T)
        f = np.concatenate(feats, axis=1)
    model = (
        KMeans(n_units, n_init=10, random_state=0)
        if kind == "kmeans"
        # float64 and a covariance floor of 1e-3 noise units squared: with 64 features (32
        # channels) a component's full covariance otherwise collapses and the fit fails
        else GaussianMixture(n_units, reg_covar=1e-3, random_state=0)
    )
    labels = model.fit_predict(f.astype(np.float64))
    return sc.NumpySorting.from_samples_and_labels([samples], [labels], rec.sampling_frequency)


def timed(sorter: str, rec_path: Path, out: Path, n_units: int) -> dict:
    """Run one sorter in a child process; wall time, peak memory and the CPU seconds in user
    and in system (kernel) mode from /usr/bin/time -v: a cost paid in the kernel (pages faulted
    in anew by a loop's allocations) shows in the system time while the wall time's spread
    between runs hides it."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        __file__,
        "--run-one",
        sorter,
        str(rec_path),
        str(out),
        str(n_units),
    ]
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - started
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    ok = proc.returncode == 0 and (out / "sorting").exists()
    if not ok:
        (out / "stderr.txt").write_text(proc.stderr[-20000:])
    cpu = {
        f"{mode.lower()}_s": float(m.group(1)) if m else np.nan
        for mode in ("User", "System")
        for m in [re.search(rf"{mode} time \(seconds\): ([\d.]+)", proc.stderr)]
    }
    return {"ok": ok, "wall_s": wall, "peak_mb": int(rss.group(1)) / 1024 if rss else np.nan} | cpu


def score(gt_path, out: Path, sorter: str) -> dict:
    import spikeinterface.comparison as scmp
    import spikeinterface.core as sc

    sorting = sc.load(out / "sorting")
    row = {"units": sorting.get_num_units()}
    if gt_path is None:
        return row
    gt = sc.load(gt_path)
    cmp = scmp.compare_sorter_to_ground_truth(gt, sorting, exhaustive_gt=True)
    acc = cmp.get_performance()["accuracy"].to_numpy(float)
    row |= {
        "accuracy": float(np.mean(acc)),
        "well": cmp.count_well_detected_units(0.8),
        "n_gt": gt.get_num_units(),
        "fp": cmp.count_false_positive_units(),
    }
    if sorter.startswith("neurodict"):
        single = sorting.unit_ids[~np.load(out / "multi_unit.npy")]
        cmp1 = scmp.compare_sorter_to_ground_truth(
            gt, sorting.select_units(single), exhaustive_gt=True
        )
        row["fp_single"] = cmp1.count_false_positive_units()
    return row


def locust_agreement(sorters: list[str], work: Path) -> dict:
    """Units of each sorter on the real tetrode matched by a peer (agreement >= 0.5)."""
    import spikeinterface.comparison as scmp
    import spikeinterface.core as sc

    base = work / "locust" / "neurodict" / "sorting"
    if not base.exists():
        return {}
    ours = sc.load(base)
    out = {}
    for sorter in sorters:
        path = work / "locust" / sorter / "sorting"
        if sorter == "neurodict" or not path.exists():
            continue
        cmp = scmp.compare_two_sorters(ours, sc.load(path))
        out[sorter] = int(np.sum(cmp.agreement_scores.max(axis=1) >= 0.5))
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--run-one":
        run_one(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--large",
        action="store_true",
        help="also probe32's seeds 2 and 3, probe64 (64 ch, 50 units, 5 min; seeds 1 and 2), "
        "drift64 (a drifting 2 x 32 shank, 5 min), np384 (a Neuropixels 1.0 shank, 150 "
        "units, 10 min) and np384-1min (the same for 1 min)",
    )
    p.add_argument(
        "--sorters", nargs="+", default=["neurodict", "neurodict-nomatch", *PEERS, *BASELINES]
    )
    p.add_argument("--recordings", nargs="+", default=None)
    p.add_argument("--work", type=Path, default=None, help="keep recordings and sortings here")
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    args = p.parse_args()
    import spikeinterface.sorters as ss

    sorters = [
        s
        for s in args.sorters
        if s in BASELINES or s.startswith("neurodict") or s in ss.installed_sorters()
    ]
    skipped = sorted(set(args.sorters) - set(sorters))
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")
    specs = recordings(args.quick, args.large)
    if args.recordings:
        specs = {k: v for k, v in specs.items() if k in args.recordings}
    work = args.work or Path(tempfile.mkdtemp(prefix="nd-sorting-"))
    warm_up(sorters, work)
    results: dict = {}
    for name, spec in specs.items():
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        rec_path, gt_path = make_recording(spec, folder)
        n_units = spec.get("units", 5 if spec["kind"] == "hybrid" else 8)
        for sorter in sorters:
            segmented = np.size(spec.get("duration", 0.0)) > 1
            if sorter in BASELINES and (gt_path is None or segmented):  # one segment only
                continue
            out = folder / sorter
            run = timed(sorter, rec_path, out, n_units)
            row = run | (score(gt_path, out, sorter) if run["ok"] else {})
            results.setdefault(name, {})[sorter] = row
            print(
                name,
                sorter,
                json.dumps(
                    {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
                ),
                flush=True,
            )
    print_table(results)
    if "locust" in results:
        print(
            "\nlocust: neurodict units matched by each peer (agreement >= 0.5):",
            locust_agreement(list(results["locust"]), work),
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def warm_up(sorters: list[str], work: Path) -> None:
    """Each sorter run once, untimed, on a short 32-channel recording, so that the table's
    times are those of a sort on an installed sorter: numba compiles a kernel the first time a
    tree runs it and caches it on disk (neurodict's, about 12 s of a 32-channel sort's 45 in a
    fresh tree), a cost paid once per installation, not per recording. Printed apart."""
    spec = dict(kind="gt", channels=32, units=10, duration=10.0, noise=5.0, seed=0)
    folder = work / "warm-up"
    folder.mkdir(parents=True, exist_ok=True)
    rec_path, _ = make_recording(spec, folder)
    for sorter in sorters:
        if sorter not in BASELINES:
            run = timed(sorter, rec_path, folder / sorter, spec["units"])
            print(f"warm-up (untimed in the table) {sorter}: {run['wall_s']:.1f} s", flush=True)


def print_table(results: dict) -> None:
    print(
        "\n| recording | sorter | mean accuracy | well detected | FP units | units | "
        "wall s | time / neurodict | peak MB | memory / neurodict |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        ours = rows.get("neurodict", {})
        for sorter, r in rows.items():
            if not r.get("ok"):
                print(f"| {name} | {sorter} | failed | | | | | | | |")
                continue
            fp = f"{r.get('fp', '')}" + (f" ({r['fp_single']} single)" if "fp_single" in r else "")
            well = f"{r['well']}/{r['n_gt']}" if "well" in r else ""
            acc = f"{r['accuracy']:.2f}" if "accuracy" in r else ""
            tr = r["wall_s"] / ours["wall_s"] if ours.get("ok") else np.nan
            mr = r["peak_mb"] / ours["peak_mb"] if ours.get("ok") else np.nan
            print(
                f"| {name} | {sorter} | {acc} | {well} | {fp} | {r.get('units', '')} | "
                f"{r['wall_s']:.0f} | {tr:.2f} | {r['peak_mb']:.0f} | {mr:.2f} |"
            )


if __name__ == "__main__":
    main()
