"""The sorter's peak memory against the recording's length (issue 16, item 4); prints a table.

One generated recording (spikeinterface's ground-truth generator, noise SD 5 uV, seed 0; a
tetrode of 8 units by default, ``--channels 32 --units 20`` a 32-channel shank) at each length,
sorted by ``run_sorter("neurodict", ..., n_jobs=1)`` in its own process. The process's resident
memory is sampled every 50 ms and charged to the sorter's last log line, so the table says
which phase holds the peak ("after: <line>" is the phase that follows that line). The target:
the 30-minute peak within 1.5x the 5-minute one.

Usage::

    python benchmarks/sorter_memory.py                    # 5 and 30 minutes
    python benchmarks/sorter_memory.py --minutes 1 5      # a quick check
    python benchmarks/sorter_memory.py --channels 32 --units 20
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mb() -> float:
    """This process's resident memory in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sort_one(minutes: float, channels: int, units: int, work: Path) -> dict:
    """Generate and sort one recording in this process; the peak per phase."""
    import spikeinterface.core as sc
    import spikeinterface.sorters as ss

    import neurodict  # noqa: F401  (registers the sorter)

    rec, _ = sc.generate_ground_truth_recording(
        durations=[minutes * 60],
        num_channels=channels,
        num_units=units,
        seed=0,
        noise_kwargs={"noise_levels": 5.0, "strategy": "on_the_fly"},
    )
    rec = rec.save(folder=work / "recording", progress_bar=False)
    state = {"phase": "before the first log line", "peaks": {}, "done": False}

    class Phase(logging.Handler):
        def emit(self, record):
            state["phase"] = f"after: {record.getMessage()[:80]}"

    logger = logging.getLogger("neurodict")
    logger.addHandler(Phase())
    logger.setLevel(logging.INFO)

    def sample():
        while not state["done"]:
            phase, now = state["phase"], rss_mb()
            if now > state["peaks"].get(phase, 0.0):
                state["peaks"][phase] = now
            time.sleep(0.05)

    base = rss_mb()
    threading.Thread(target=sample, daemon=True).start()
    clock = time.time()
    sorting = ss.run_sorter(
        "neurodict", rec, folder=work / "sorter", remove_existing_folder=True, n_jobs=1
    )
    wall = time.time() - clock
    state["done"] = True
    phase, peak = max(state["peaks"].items(), key=lambda kv: kv[1])
    return {
        "minutes": minutes,
        "spikes": int(sum(sorting.count_num_spikes_per_unit().values())),
        "units": int(sorting.get_num_units()),
        "wall_s": wall,
        "base_mb": base,
        "peak_mb": peak,
        "peak_phase": phase,
    }


def main() -> None:
    if len(sys.argv) > 4 and sys.argv[1] == "--one":
        with tempfile.TemporaryDirectory() as tmp:
            minutes, channels, units = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
            print(json.dumps(sort_one(minutes, channels, units, Path(tmp))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[5.0, 30.0])
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--units", type=int, default=8)
    args = ap.parse_args()
    rows = []
    for minutes in args.minutes:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(minutes), str(args.channels), str(args.units)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = rows[0]["peak_mb"]
    print("| minutes | spikes sorted | units | wall s | peak MB | x shortest | phase of the peak |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['minutes']:g} | {r['spikes']} | {r['units']} | {r['wall_s']:.0f} "
            f"| {r['peak_mb']:.0f} | {r['peak_mb'] / first:.2f} | {r['peak_phase']} |"
        )


if __name__ == "__main__":
    main()
