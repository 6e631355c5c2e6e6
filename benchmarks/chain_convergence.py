"""How many sweeps the sorter's chains need: burn-in measured on the benchmark's recordings.

Each recording of :mod:`benchmarks.sorting` (made there, or here when absent) is sorted by
``run_sorter("neurodict", ...)`` with the sampler instrumented: for every chain (one per
neighbourhood and learning) each sweep's joint log-likelihood, clusters holding spikes and
split–merge moves accepted. The moves run in burn-in only and target a neighbouring model's
posterior (:meth:`neurodict.sort.model.Sampler._split_merge`), so the burn-in's level and the
kept sweeps' differ; per chain, in units of the kept sweeps' SD (at least 1):

- **gap after s sweeps**: how far the log-likelihood after s sweeps lies below the level the
  burn-in ends at (the median of its last 5 sweeps): how much of the burn-in was still
  climbing at s;
- **jump**: the kept sweeps' median above that level (the plain Gibbs sweeps' own level);
- **last move**: the last burn-in sweep in which a split or merge was accepted (0: none);
- the clusters holding spikes at the start and at the end.

The table gives the median and 90th percentile over a recording's chains, for each learning
apart (the first pass's, and the second's on the peeled snippets after the overlap pass). The
figure (``--figure``) draws every chain's log-likelihood relative to its kept sweeps' median.

Usage::

    python benchmarks/chain_convergence.py --work /tmp/bench --recordings probe32-n5-s1 drift64
    python benchmarks/chain_convergence.py --work /tmp/bench --recordings tetrode-n5-s1 \
        --params '{"n_init_clusters": 5}'
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import sorting as bench  # noqa: E402


def instrument(record: dict) -> None:
    """Patch the sampler so that every chain leaves its per-sweep record in
    ``record["dir"]``, with the learning it belongs to (``record["pass"]``, counted by the
    calls of ``learn``); worker processes inherit the patch by fork."""
    from neurodict.sort import learn, model, run

    sweep, init, learn_chain = model.Sampler.sweep, model.Sampler.__init__, learn._learn_chain
    learn_group, current = learn.learn, {}

    def init_(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.record = {"clusters": [], "moves": []}
        current["sampler"] = self

    def sweep_(self, split_merge=0):
        st = sweep(self, split_merge)
        self.record["clusters"].append(int(np.unique(st.labels).size))
        self.record["moves"].append(self.accepted["split"] + self.accepted["merge"])
        return st

    def learn_chain_(*args, **kwargs):
        chain = learn_chain(*args, **kwargs)
        rec = current["sampler"].record | {
            "trace": chain.trace.tolist(),
            "pass": ("first", "second")[record["pass"]],
        }
        folder = record["dir"]
        path = folder / f"{os.getpid()}-{len(list(folder.iterdir()))}.pkl"
        path.write_bytes(pickle.dumps(rec))
        return chain

    def learn_(*args, **kwargs):
        record["pass"] += 1
        return learn_group(*args, **kwargs)

    # the worker pool pickles the chain's function by its name: the patched one answers to it
    learn_chain_.__module__, learn_chain_.__qualname__ = learn.__name__, "_learn_chain"
    model.Sampler.__init__, model.Sampler.sweep = init_, sweep_
    learn._learn_chain, run.learn = learn_chain_, learn_


GAP_SWEEPS = (5, 10, 20, 30)


def summarise(records: list[dict], n_samples: int) -> dict:
    """Per chain (its burn-in: the sweeps before its last `n_samples`): the gaps after
    :data:`GAP_SWEEPS` sweeps, the jump, the last accepted move, the clusters at the start and
    the end."""
    gaps, jump, last_move, clusters = [], [], [], []
    for r in records:
        trace = np.asarray(r["trace"])
        n_burn = trace.size - n_samples
        kept, level = trace[n_burn:], np.median(trace[max(n_burn - 5, 0) : n_burn])
        sd = max(kept.std(), 1.0)
        at = np.asarray(GAP_SWEEPS)
        gap = (level - trace[np.minimum(at, trace.size) - 1]) / sd
        gaps.append(np.where(at <= n_burn, gap, np.nan))
        jump.append((np.median(kept) - level) / sd)
        moved = np.flatnonzero(np.asarray(r["moves"][:n_burn]) > 0)
        last_move.append(int(moved[-1]) + 1 if moved.size else 0)
        clusters.append((r["clusters"][0], r["clusters"][-1]))
    return {
        "gap_sd": np.asarray(gaps).tolist(),
        "jump_sd": jump,
        "last_move": last_move,
        "clusters": clusters,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="recordings (as sorting.py's --work)")
    p.add_argument("--recordings", nargs="+", required=True)
    p.add_argument("--figure", type=Path, default=None)
    p.add_argument("--params", type=json.loads, default={}, help="sorter parameters (JSON)")
    args = p.parse_args()

    import spikeinterface.core as sc
    import spikeinterface.sorters as ss

    import neurodict  # noqa: F401  (registers the sorter)
    from neurodict.sort.params import SortParams

    params = SortParams.from_config(args.params)
    specs = bench.recordings(quick=False, large=True)
    rows, traces, record = {}, {}, {}
    instrument(record)
    for name in args.recordings:
        folder = args.work / name
        if not (folder / "rec").exists():
            bench.make_recording(specs[name], folder)
        record_dir = folder / "chains"
        record_dir.mkdir(parents=True, exist_ok=True)
        for old in record_dir.iterdir():
            old.unlink()
        record["dir"], record["pass"] = record_dir, -1
        ss.run_sorter(
            "neurodict",
            sc.load(folder / "rec"),
            folder=folder / "convergence",
            remove_existing_folder=True,
            verbose=False,
            n_jobs=2,
            **args.params,
        )
        records = [pickle.loads(f.read_bytes()) for f in sorted(record_dir.iterdir())]
        for step in ("first", "second"):
            mine = [r for r in records if r["pass"] == step]
            if mine:
                rows[f"{name} {step}"] = summarise(mine, params.n_samples)
                traces[f"{name} {step}"] = [r["trace"] for r in mine]
    print(f"n_burn {params.n_burn}, n_samples {params.n_samples}")
    print(
        "| recording, learning | chains | "
        + " | ".join(f"gap after {s} sweeps, SDs" for s in GAP_SWEEPS)
        + " | jump, SDs | last accepted split-merge | clusters at the start / end |"
    )
    print("|---" * (6 + len(GAP_SWEEPS)) + "|")
    for name, r in rows.items():
        q = lambda v: f"{np.nanmedian(v):.1f} / {np.nanpercentile(v, 90):.1f}"  # noqa: E731
        gap = " | ".join(q(col) for col in np.asarray(r["gap_sd"]).T)
        c = np.median(np.asarray(r["clusters"]), axis=0)
        print(
            f"| {name} | {len(r['jump_sd'])} | {gap} | {q(r['jump_sd'])} | "
            f"{q(r['last_move'])} | {c[0]:.0f} / {c[1]:.0f} |"
        )
    (args.work / "chain_convergence.json").write_text(json.dumps(rows))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(traces), figsize=(4 * len(traces), 3), squeeze=False)
        for ax, (name, ts) in zip(axes[0], traces.items(), strict=True):
            for t in ts:
                t = np.asarray(t)
                burn = t.size - params.n_samples
                ax.plot(np.arange(1, t.size + 1), t - np.median(t[burn:]), lw=0.5)
                ax.axvline(burn, color="k", ls="--", lw=0.3)
            ax.set_yscale("symlog", linthresh=100)
            ax.set_title(name)
            ax.set_xlabel("sweep")
        axes[0, 0].set_ylabel("log-likelihood − kept median")
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)


if __name__ == "__main__":
    main()
