"""The transfer phase diagram (refimpl.lab.phase_transfer and
``phase --transfer``): every run is the three-stage experiment of its cell
and seed, repetitions share their seed across the grid, the statistics of the
gain, resuming, and the refusals."""

import json

import numpy as np
import pytest

from refimpl.cli import main
from refimpl.config import Config
from refimpl.errors import ResourceError, UsageError
from refimpl.files import jsonable
from refimpl.lab.measures import measure_outcomes
from refimpl.lab.phase import parse_axis
from refimpl.lab.phase_transfer import (
    SIGN_LEVEL,
    check_transfer_axis_field,
    gain_statistics,
    run_transfer_phase,
)

BASE = Config(d=40, m=3, n_up=12, n_down=6, steps_up=30, steps_down=30, n_test=200)
CHECK = check_transfer_axis_field


def axes():
    return parse_axis("alpha=0:1:0.5", "--x", CHECK), parse_axis("n_down=4,8", "--y", CHECK)


@pytest.mark.parametrize("freeze", (False, True))
def test_every_run_is_its_cells_experiment(tmp_path, freeze):
    """Batched (to rounding: the test error equal but where batch.py says)
    or, when the base freezes the inherited filters, run by run (bit for bit)."""
    x, y = axes()
    base = BASE.replace(freeze_inherited=freeze, u_norm=0.5, n_test=1000)  # errors above 0
    summary = run_transfer_phase(base, x, y, 3, tmp_path, progress=False, plot=False)
    assert summary["runs"] == 18 and summary["runs_computed"] == 18
    assert summary["measure"] == ("outcomes" if freeze else "outcomes_batched")
    with np.load(tmp_path / "phase_transfer.npz") as a:
        gain, seeds = a["gain"], a["seeds"]
        assert gain.shape == (2, 3, 3) and a["gain_mean"].shape == (2, 3)
        # repetition k has one seed over the whole grid (common random numbers)
        assert np.all(seeds == seeds[0, 0][None, None, :])
        keys = ("gain", "err_transfer", "err_scratch")
        ref = {k: np.empty_like(gain) for k in keys}
        for i, n_down in enumerate(y.values):
            for j, alpha in enumerate(x.values):
                for k in range(3):
                    cell = base.replace(alpha=alpha, n_down=n_down, seed=int(seeds[i, j, k]))
                    run = jsonable(measure_outcomes(cell))
                    for key in keys:
                        ref[key][i, j, k] = run[key]
        assert np.mean(ref["err_transfer"] > 0) > 0.5 and np.mean(ref["gain"] != 0) > 0.5
        for key in keys:  # batched: equal but where rounding rotates the test draws
            assert np.mean(a[key] == ref[key]) >= (1.0 if freeze else 17 / 18), key
        np.testing.assert_array_equal(a["gain_mean"], gain.mean(axis=-1))
    again = run_transfer_phase(base, x, y, 3, tmp_path, progress=False, plot=False)
    assert again["runs_cached"] == 18 and again["runs_computed"] == 0
    assert json.loads((tmp_path / "phase_transfer.json").read_text())["runs"] == 18
    rows = (tmp_path / "phase_transfer.csv").read_text().splitlines()
    assert rows[0].startswith("alpha,n_down,gain_mean") and len(rows) == 1 + 6


def test_gain_statistics():
    gains = np.array(
        [
            [0.1] * 10,  # all positive: p = 2 / 2^10
            [-0.1] * 10,
            [0.1, -0.1] * 5,
            [0.0] * 8 + [0.2, np.nan],  # ties and a missing run are left out
        ]
    )
    s = gain_statistics(gains)
    assert s["p"][0] == pytest.approx(2 / 2**10) and s["sign"][0] == 1
    assert s["sign"][1] == -1 and s["sign"][2] == 0 and s["p"][2] == pytest.approx(1.0)
    assert s["p"][3] == pytest.approx(1.0) and s["sign"][3] == 0
    assert s["share"][0] == 1.0 and s["share"][3] == pytest.approx(1 / 9)
    assert s["mean"][3] == pytest.approx(0.2 / 9) and s["median"][2] == 0.0
    assert s["se"][0] == 0.0 and SIGN_LEVEL == 0.05


def test_axis_fields():
    CHECK("alpha")
    CHECK("n")  # a shorthand: both tasks
    for bad, why in (("seed", "repetitions"), ("snapshots", "stores"), ("layout", "numeric")):
        with pytest.raises(UsageError, match=why):
            CHECK(bad, "--y")
    with pytest.raises(UsageError, match="downstream stages"):
        parse_axis("alpha=0:1:0.5", "--x")  # the single-task diagram does not run it


def test_budget_refuses_before_any_work(tmp_path):
    x = parse_axis("d=1000:100000:1000", "--x", CHECK)
    y = parse_axis("alpha=0:1:0.01", "--y", CHECK)
    with pytest.raises(ResourceError, match="transfer phase diagram"):
        run_transfer_phase(BASE, x, y, 10, tmp_path, progress=False)
    assert not (tmp_path / ".sweep-cache").exists()


def test_command_line(tmp_path, capsys):
    args = ["phase", "--transfer", "--x", "alpha=0,1", "--y", "n_up=8,12", "--reps", "2"]
    args += ["--set", "d=30", "--set", "n_up=8", "--set", "n_down=6"]
    args += ["--set", "steps_up=20", "--set", "steps_down=20"]
    args += ["--set", "n_test=100", "--contour", "gamma_inh", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "transfer phase diagram: 2 alpha x 2 n_up cells" in out
    with np.load(tmp_path / "phase_transfer.npz") as a:
        assert str(a["contour_name"]) == "gamma_inh" and a["contour"].shape == (2, 2)
    for bad, message in (
        (["phase", "--contour", "gamma_inh", "--x", "d=10,20", "--y", "n=5,6"], "add --transfer"),
        (["phase", "--transfer", "--preset", "kou2023"], "is a single-task preset"),
        (["phase", "--preset", "transfer-u-n1"], "is a transfer preset (add --transfer)"),
    ):
        assert main(bad + ["--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
