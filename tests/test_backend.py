"""The backend where no GPU is visible: "gpu" fails naming the setting, "auto" falls back."""

from __future__ import annotations

import logging

import pytest

from neurodict import backend
from neurodict.backend import CPU, get_backend
from neurodict.cli import main
from tests.lfpdict.test_step import PARAMS, write_inputs, write_session_json

NO_GPU = (
    "'backend': expected a GPU for 'gpu', but cupy or a CUDA device is not available here; "
    "install the gpu extra (pip install -e '.[gpu]') on a GPU machine, or set backend: auto "
    "(falls back to CPU) or cpu."
)
FALLBACK = "backend auto: no GPU available (cupy or CUDA device missing); using the CPU"


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine where cupy or a CUDA device is missing (as on a CPU node of a cluster)."""
    monkeypatch.setattr(backend, "_gpu", lambda: None)


def test_gpu_without_a_device_is_an_error_naming_the_setting_and_the_way_out(no_gpu):
    with pytest.raises(ValueError) as exc:
        get_backend("gpu")
    assert str(exc.value) == NO_GPU


def test_auto_without_a_device_falls_back_to_cpu_with_one_log_line(no_gpu, caplog):
    with caplog.at_level(logging.INFO, logger="neurodict"):
        assert get_backend("auto") is CPU
    assert [r.getMessage() for r in caplog.records] == [FALLBACK]


def test_cpu_never_looks_for_a_gpu(monkeypatch, caplog):
    monkeypatch.setattr(backend, "_gpu", lambda: pytest.fail("cpu looked for a GPU"))
    with caplog.at_level(logging.INFO, logger="neurodict"):
        assert get_backend("cpu") is CPU
    assert not caplog.records


def test_unknown_choice_names_the_allowed_values():
    with pytest.raises(
        ValueError,
        match=r"^'backend': expected one of \['auto', 'cpu', 'gpu'\]; "
        r"got 'cuda'\.$",
    ):
        get_backend("cuda")


@pytest.mark.parametrize("choice", ["gpu", "auto"])
def test_lfpdict_command_without_a_gpu(tmp_path, no_gpu, capsys, choice):
    """What a cluster job's log shows: the error and exit status 2, or the one fallback line."""
    write_inputs(tmp_path)
    write_session_json(tmp_path, PARAMS | {"backend": choice})
    rc = main(["lfpdict", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    if choice == "gpu":
        assert rc == 2 and f"neurodict lfpdict: error:\n{NO_GPU}" in err
        assert not (tmp_path / "lfp_dict.npz").exists()
    else:
        assert rc == 0 and err.count(FALLBACK) == 1
        assert (tmp_path / "lfp_dict.npz").exists()


class _Stream:
    """Stands in for cupy's stream: records what the block does while capturing."""

    def __init__(self, fail: bool):
        self.fail, self.capturing, self.launched = fail, False, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        self.capturing = True

    def end_capture(self):
        self.capturing = False
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        stream = self

        class Graph:
            def launch(self, on):
                assert on is stream
                stream.launched += 1

        return Graph()


@pytest.mark.parametrize("fail", [False, True])
def test_a_cuda_graph_runs_the_block_then_records_it_then_replays(monkeypatch, caplog, fail):
    """First call: the block as it is (kernels compiled); second: recorded (the block's Python
    runs, its kernels are not executed) and launched; later: launched. A failed record runs the
    block as it is, and every later block too (no second attempt), with one warning."""
    import types

    streams = []

    def stream():
        streams.append(_Stream(fail))
        return streams[-1]

    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(Stream=stream))
    monkeypatch.setitem(__import__("sys").modules, "cupy", cupy)
    monkeypatch.setattr(backend.CudaGraph, "failed", None)
    backend._recording_stream.cache_clear()  # the stand-in's stream, not a real one
    executed, recorded = [], []

    def block():
        (recorded if streams[0].capturing else executed).append(1)

    on = backend.Backend("gpu", None, None, graphs=True)
    with caplog.at_level(logging.WARNING, logger="neurodict.backend"):
        for _ in range(2):  # two solves
            run = on.replayable(block)
            for _ in range(5):
                run()
    backend._recording_stream.cache_clear()
    assert len(streams) == 1  # every record on one stream
    if fail:
        assert (len(executed), len(recorded), streams[0].launched) == (10, 1, 0)
        assert [r.getMessage() for r in caplog.records] == [
            "CUDA graph not recorded (operation not permitted when stream is capturing); "
            "blocks run uncaptured"
        ]
    else:
        assert (len(executed), len(recorded), streams[0].launched) == (2, 2, 8)
        assert caplog.records == []
    assert CPU.replayable(block) is block
