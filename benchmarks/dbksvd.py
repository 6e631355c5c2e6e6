"""Double-batch K-SVD at scale: a waveform dictionary from millions of spike snippets.

The snippets are streamed, seeded, from spikeinterface's generated templates (a tetrode,
``ms_before`` 0.6, ``ms_after`` 1.0 at 30 kHz: T = 48 samples per channel, amplitudes scaled
0.5-1.5, white noise of SD 1 after dividing by the noise level): every channel of every
snippet is one row. Each method runs in its own process (peak memory is that process's):

- ``dbksvd``: :func:`neurodict.sort.dbksvd.learn`, K atoms, 3 per row, 10 passes, chunks of
  65 536 rows (the sorter's settings);
- ``sklearn-minibatch``: scikit-learn's ``MiniBatchDictionaryLearning`` (online dictionary
  learning, Mairal et al. 2009) with the same K, OMP with 3 atoms as its transform, one pass of
  ``partial_fit`` over the same stream in the same chunks, on the smaller sizes only (about
  400 rows/s on 2 cores: a million snippets would take hours).

Scores: the relative coding error ``‖X − C Dᵀ‖² / ‖X‖²`` of 100 000 held-out rows coded by the
same batch OMP (3 atoms) on each dictionary, beside the noise's share of ``‖X‖²`` (3 atoms also
fit some of the noise, so the error can fall below it). Floor of a pass: reading the rows
(4 bytes each value, at 10 GB/s) and the products ``X D`` (``2 n T K`` flops, at 50 GFLOP/s).

Usage::

    python benchmarks/dbksvd.py                       # 20 000 (both) and 1 000 000 snippets
    python benchmarks/dbksvd.py --snippets 20000      # a quick check
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np

T_MS = (0.6, 1.0)
FS = 30000.0
CHUNK_SNIPPETS = 16384  # x 4 channels = 65 536 rows
N_ATOMS, N_NONZERO, N_PASSES = 40, 3, 10


def templates(n_units: int = 20, seed: int = 0) -> np.ndarray:
    """(units, T, channels) tetrode templates in noise units (peak 3-15 SD)."""
    from spikeinterface.core.generate import generate_templates

    locations = np.array([[0, 0], [20, 0], [0, 20], [20, 20.0]])
    units = np.c_[np.random.default_rng(seed).uniform(-20, 40, (n_units, 2)), np.full(n_units, 20)]
    t = generate_templates(locations, units, FS, 1.5, 3.0, seed=seed, unit_params={})
    peak = int(1.5e-3 * FS)  # the generator's window, cut to the sorter's around the peak
    t = t[:, peak - int(T_MS[0] * 1e-3 * FS) : peak + int(T_MS[1] * 1e-3 * FS)]
    scale = np.abs(t).max(axis=(1, 2))
    return t / scale[:, None, None] * np.linspace(3, 15, n_units)[:, None, None]


def stream(n_snippets: int, seed: int, tpl: np.ndarray):
    """A restartable stream of (rows, T) chunks: every channel of every snippet a row."""

    def chunks():
        rng = np.random.default_rng(seed)
        for start in range(0, n_snippets, CHUNK_SNIPPETS):
            n = min(CHUNK_SNIPPETS, n_snippets - start)
            unit = rng.integers(0, tpl.shape[0], n)
            x = tpl[unit] * rng.uniform(0.5, 1.5, (n, 1, 1)) + rng.standard_normal(
                (n, tpl.shape[1], tpl.shape[2])
            )
            yield x.transpose(0, 2, 1).reshape(-1, tpl.shape[1]).astype(np.float32)

    return chunks


def run(method: str, n_snippets: int, backend: str, queue) -> None:
    """One method in this process; puts its row (or what stopped it) on `queue`."""
    try:
        queue.put(_run(method, n_snippets, backend))
    except Exception as exc:  # e.g. no GPU here: the table says so
        queue.put({"method": f"{method} ({backend})", "snippets": n_snippets, "failed": str(exc)})


def _run(method: str, n_snippets: int, backend: str) -> dict:
    from neurodict.backend import get_backend
    from neurodict.sort import dbksvd

    tpl = templates()
    chunks = stream(n_snippets, 1, tpl)
    started = time.perf_counter()
    if method == "dbksvd":
        be = get_backend(backend)
        atoms = dbksvd.learn(chunks, N_ATOMS, N_NONZERO, N_PASSES, backend=be, progress=True).atoms
        method = f"dbksvd ({be.name})"
        passes = N_PASSES
    else:
        from sklearn.decomposition import MiniBatchDictionaryLearning

        model = MiniBatchDictionaryLearning(
            N_ATOMS,
            transform_algorithm="omp",
            transform_n_nonzero_coefs=N_NONZERO,
            batch_size=1024,
            random_state=0,
        )
        for chunk in chunks():
            model.partial_fit(chunk)
        atoms = model.components_.T / np.linalg.norm(model.components_, axis=1)
        passes = 1
    wall = time.perf_counter() - started
    held_out = np.concatenate(list(stream(25_000, 99, tpl)()))
    support, coef = dbksvd.encode(atoms, held_out, N_NONZERO)
    fit = dbksvd.dense_codes(support, coef, N_ATOMS) @ atoms.T
    error = float(np.sum((held_out - fit) ** 2) / np.sum(held_out**2))
    rows = n_snippets * tpl.shape[2]
    read_s = rows * tpl.shape[1] * 4 * passes / 10e9  # at 10 GB/s
    flop_s = 2 * rows * tpl.shape[1] * N_ATOMS * passes / 50e9  # at 50 GFLOP/s
    return dict(
        method=method,
        snippets=n_snippets,
        rows=rows,
        passes=passes,
        wall_s=wall,
        s_per_pass=wall / passes,
        rows_per_s=rows * passes / wall,
        floor_ratio=wall / (read_s + flop_s),
        peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        error=error,
        noise=float(held_out.size / np.sum(held_out**2)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snippets", type=int, nargs="+", default=[20_000, 1_000_000])
    ap.add_argument("--methods", nargs="+", default=["dbksvd", "sklearn-minibatch"])
    ap.add_argument("--peer-snippets", type=int, default=20_000, help="the peer's largest size")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu"], help="for dbksvd")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for n in args.snippets:
        for method in args.methods:
            if method != "dbksvd" and n > args.peer_snippets:
                continue
            queue = ctx.Queue()
            proc = ctx.Process(target=run, args=(method, n, args.backend, queue))
            proc.start()
            rows.append(queue.get())
            proc.join()
    print(
        "\n| method | snippets | rows | passes | wall s | s / pass | rows/s | x floor | peak MB "
        "| held-out error | noise share |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['method']} | {r['snippets']:,} | {r['failed']} |")
            continue
        print(
            f"| {r['method']} | {r['snippets']:,} | {r['rows']:,} | {r['passes']} "
            f"| {r['wall_s']:.1f} | {r['s_per_pass']:.2f} | {r['rows_per_s']:,.0f} "
            f"| {r['floor_ratio']:.0f} | {r['peak_mb']:.0f} | {r['error']:.4f} | {r['noise']:.4f} |"
        )


if __name__ == "__main__":
    main()
