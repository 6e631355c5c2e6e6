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
