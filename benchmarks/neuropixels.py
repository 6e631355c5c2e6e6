"""A Neuropixels session end to end: a generated recording in SpikeGLX's format through the whole
workflow, with the time and memory each step took.

The recording is written as SpikeGLX writes it (``<run>_g0_t0.imec0.ap.bin`` with 385 channels,
the 384 electrodes and the sync channel, and its ``.meta``), taking the ``.meta`` of the real
Neuropixels 2.0 sample in spikewrap's wheel (a 384-contact single-shank map, 15 µm rows) with
its sizes changed: neo's SpikeGLX reader then gives the probe from the ``.meta`` through
probeinterface, exactly as for a real run. The samples are spikeinterface's ground-truth
generator on that probe (``--units`` units, 3-20 Hz), plus an LFP per region by depth
(three regions along the shank; each unit's spikes drive the regions its prototype family reaches
through Gabor filters, as ``neurodict synth`` builds them, over theta, gamma and 1/f background),
in the probe's integer steps.

The session sorts the shank as one group with regions by depth, ``bad_channels: auto``; the
workflow runs with ``profiles/default`` (2 cores). Printed: each rule's wall time and peak
memory (Snakemake's benchmark files), the whole run's, and the sorter against the truth.

Usage::

    python benchmarks/neuropixels.py --minutes 2 --units 60 --out /tmp/np
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REGIONS = ("CA1", "DG", "TH")  # along the shank, each a third of its contacts' span


def sample_meta() -> Path:
    """The real Neuropixels 2.0 ``.ap.meta`` of spikewrap's example data."""
    import importlib.util

    spec = importlib.util.find_spec("spikewrap")
    if spec is None:
        sys.exit("spikewrap (its example Neuropixels .meta) is not installed")
    root = Path(spec.submodule_search_locations[0]) / "examples/example_tiny_data/spikeglx"
    return next(root.rglob("*imec0.ap.meta"))


def depth_ranges(depth_um: np.ndarray) -> list[tuple[str, float, float]]:
    """(region, from_um, to_um): :data:`REGIONS` on equal thirds of the contacts' span."""
    edges = np.linspace(depth_um.min(), depth_um.max() + 1.0, len(REGIONS) + 1)
    return [(r, float(a), float(b)) for r, a, b in zip(REGIONS, edges[:-1], edges[1:], strict=True)]


def write_spikeglx(folder: Path, minutes: float, units: int, seed: int) -> tuple[Path, Path]:
    """The run folder (``run_g0_imec0``) and the truth sorting folder."""
    import spikeinterface.core as sc
    import spikeinterface.extractors as se

    from neurodict import synth

    meta = sample_meta()
    probe_rec = se.read_spikeglx(meta.parent, stream_name="imec0.ap")
    probe = probe_rec.get_probe()
    gain_uv = float(probe_rec.get_channel_gains()[0])
    fs = probe_rec.sampling_frequency
    rng = np.random.default_rng(seed)
    rec, truth = sc.generate_ground_truth_recording(
        durations=[60.0 * minutes],
        sampling_frequency=fs,
        probe=probe,
        num_units=units,
        generate_sorting_kwargs={
            "firing_rates": rng.uniform(3.0, 20.0, size=units),
            "refractory_period_ms": 2.0,
        },
        noise_kwargs={"noise_levels": 8.0, "strategy": "on_the_fly"},
        seed=seed,
    )
    depth = rec.get_channel_locations()[:, 1]
    spec = synth.SynthSpec(n_regions=len(REGIONS), duration_s=60.0 * minutes, fs_hz=fs)
    n_bins = int(spec.duration_s * spec.fs_lfp_hz)
    trains = [truth.get_unit_spike_train(u) for u in truth.unit_ids]
    u = synth.bin_spikes(trains, fs, spec.fs_lfp_hz, n_bins)
    family = synth.family_filters(spec, rng)  # (families, regions, lags)
    filters = family[np.arange(units) % family.shape[0]]  # each unit drives its family's regions
    lfp = synth.spike_lfp(u, filters) + synth.background_lfp(spec, n_bins, rng)
    channel_region = np.array(
        [next(i for i, (_, a, b) in enumerate(depth_ranges(depth)) if a <= y < b) for y in depth]
    )
    run = folder / "run_g0_imec0"
    run.mkdir(parents=True)
    up = int(fs // spec.fs_lfp_hz)
    chunk = int(10 * fs)
    n_total = rec.get_num_samples()
    with open(run / "run_g0_t0.imec0.ap.bin", "wb") as f:
        for start in range(0, n_total, chunk):
            end = min(start + chunk, n_total)
            x = rec.get_traces(start_frame=start, end_frame=end)
            b = np.arange(start, end) // up
            x = x + lfp[channel_region][:, np.minimum(b, n_bins - 1)].T
            out = np.zeros((end - start, 385), dtype="<i2")
            out[:, :384] = np.clip(np.round(x / gain_uv), -32768, 32767)
            out.tofile(f)
    text = meta.read_text()
    text = re.sub(r"fileSizeBytes=\d+", f"fileSizeBytes={n_total * 385 * 2}", text)
    text = re.sub(r"fileTimeSecs=[\d.]+", f"fileTimeSecs={n_total / fs}", text)
    (run / "run_g0_t0.imec0.ap.meta").write_text(text)
    truth.save(folder=folder / "truth_sorting")
    return run, folder / "truth_sorting"


def write_session(folder: Path, run: Path) -> Path:
    import spikeinterface.extractors as se
    import yaml

    depth = se.read_spikeglx(run.parent, stream_name="imec0.ap").get_channel_locations()[:, 1]
    session = {
        "raw_path": str(run.parent),
        "format": "spikeglx",
        "stream": "imec0.ap",
        "groups": [
            {
                "name": "shank",
                "channels": list(range(384)),
                "regions_by_depth": [
                    {"from_um": a, "to_um": b, "region": r} for r, a, b in depth_ranges(depth)
                ],
            }
        ],
        "bad_channels": "auto",
        "mains_hz": 50,
    }
    path = folder / "np.yaml"
    path.write_text(yaml.safe_dump(session, sort_keys=False))
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["sessions"] = {"np": str(path)}
    config["results_dir"] = str(folder / "results")
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "config.yaml"


def rule_table(results: Path) -> list[dict]:
    rows = []
    for tsv in sorted((results / "benchmarks/np").glob("*.tsv")):
        with open(tsv) as f:
            r = next(csv.DictReader(f, delimiter="\t"))
        rows.append({"rule": tsv.stem, "s": float(r["s"]), "max_rss_mb": float(r["max_rss"])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--units", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    clock = time.time()
    run, truth = write_spikeglx(args.out, args.minutes, args.units, args.seed)
    print(f"generated {args.minutes:g} min, {args.units} units in {time.time() - clock:.0f} s")
    config = write_session(args.out, run)
    clock = time.time()
    done = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            str(Path(sys.executable).parent / "snakemake"),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(config),
            "--profile",
            str(REPO / "profiles/default"),
            "--directory",
            str(args.out),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"),
    )
    wall = time.time() - clock
    (args.out / "snakemake.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        sys.exit(f"the workflow failed; see {args.out / 'snakemake.log'}")
    results = args.out / "results"
    rows = rule_table(results)
    print("| rule | wall s | peak RSS MB |\n|---|---|---|")
    for r in rows:
        print(f"| {r['rule']} | {r['s']:.0f} | {r['max_rss_mb']:.0f} |")
    print(f"| whole run (2 cores) | {wall:.0f} | {max(r['max_rss_mb'] for r in rows):.0f} |")
    import spikeinterface as si
    import spikeinterface.comparison as scmp

    cmp = scmp.compare_sorter_to_ground_truth(
        si.load(truth), si.load(results / "np/sorting"), exhaustive_gt=True
    )
    perf = cmp.get_performance()
    units = list(csv.DictReader(open(results / "np/units.tsv"), delimiter="\t"))
    single = [u for u in units if u["multi_unit"] in ("False", "false", "0")]
    print(
        json.dumps(
            {
                "units_true": args.units,
                "well_detected_0.8": len(cmp.get_well_detected_units(0.8)),
                "mean_accuracy": round(float(perf["accuracy"].mean()), 3),
                "units_found": len(units),
                "single_units": len(single),
                "false_positive_units": len(cmp.get_false_positive_units()),
            }
        )
    )


if __name__ == "__main__":
    main()
