"""The Python client against a real coordinator (conftest.py): every call, its DataFrames' shapes and values, and
its errors."""
import math
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

import isoflop


def test_sweeps_lists_both_sweeps_with_counts(client, coordinator):
    df = client.sweeps()
    demo = df[df.sweep_id == coordinator.demo["sweep"]].iloc[0]
    assert demo["name"] == "demo"
    assert demo["state"] == "SWEEP_SUCCEEDED"
    assert demo["trials"] == 12 and demo["succeeded"] == 12
    assert bool(demo["has_fit"])
    live = df[df.sweep_id == coordinator.live["sweep"]].iloc[0]
    assert live["state"] == "SWEEP_RUNNING" and live["running"] + live["leased"] == 1


def test_trials_carry_cells_and_losses(client, coordinator):
    df = client.trials(coordinator.demo["sweep"])
    assert len(df) == 12
    assert set(df.state) == {"SUCCEEDED"}
    assert sorted(df.flops_budget.unique()) == [1e11, 3e11, 1e12]
    # The fixture's losses follow L = 1.5 + 60/N^0.34 + 80/D^0.28 within 0.2%.
    law = 1.5 + 60 / df.n_params ** 0.34 + 80 / df.tokens ** 0.28
    assert ((df.val_loss / law - 1).abs() < 0.0021).all()
    assert (df.tokens == df.steps * df.batch_sequences * 64).all()
    assert (df.flops > 0).all()


def test_curve_is_full_resolution(client, coordinator):
    # 12,000 points, one per step: the HTTP API downsamples past 5,000.
    c = client.curve(coordinator.dense["trial"], "train_loss")
    n = coordinator.dense["points"]
    assert n == 12000
    assert c.step.tolist() == list(range(1, n + 1))
    assert (c.value == 5.0 - c.step / 1e4).all()


def test_curve_pages_give_the_same_points(client, coordinator):
    whole = client.curve(coordinator.dense["trial"])
    paged = client.curve(coordinator.dense["trial"], page_size=997)
    pd.testing.assert_frame_equal(whole, paged)
    with pytest.raises(isoflop.IsoflopError) as e:
        client.curve(coordinator.dense["trial"], page_size=100001)
    assert e.value.code == "INVALID_ARGUMENT" and "limit" in e.value.message


def test_curves_long_table_has_tokens_seen(client, coordinator):
    df = client.curves(coordinator.demo["sweep"], names=["train_loss"])
    assert set(df.columns) >= {"trial_id", "name", "step", "value", "n_params", "flops_budget", "tokens_seen"}
    assert df.trial_id.nunique() == 12
    last = df.sort_values("step").groupby("trial_id").tail(1)
    trials = client.trials(coordinator.demo["sweep"]).set_index("trial_id")
    assert (last.set_index("trial_id").tokens_seen == trials.loc[last.trial_id, "tokens"]).all()


def test_curve_of_a_live_trial_pages_past_a_step(client, coordinator):
    full = client.curve(coordinator.live["trial"])
    assert len(full) == 20
    coordinator.fixture("report", coordinator.live["worker"], coordinator.live["trial"],
                        str(coordinator.live["attempt"]), str(coordinator.live["epoch"]), "21", "3.5")
    again = client.curve(coordinator.live["trial"])
    assert len(again) == 21 and again.value.iloc[-1] == pytest.approx(3.5)


def test_fit_recovers_the_fixture_law(client, coordinator):
    f = client.fit(coordinator.demo["sweep"])
    assert f["final"] and f["n_points"] == 12
    assert f["alpha"] == pytest.approx(coordinator.demo["alpha"], rel=1e-12)
    assert f["beta"] == pytest.approx(coordinator.demo["beta"], rel=1e-12)
    assert f["verdict"]["level"] in {"ok", "weak", "unidentified"}
    low, high = f["ci95"]["alpha"]
    assert low <= f["alpha"] <= high
    assert math.isclose(f["a"], f["beta"] / (f["alpha"] + f["beta"]))


def test_optimal_answers_under_the_stored_fit(client, coordinator):
    o = client.optimal(1e14, coordinator.demo["sweep"])
    assert o["sweep_id"] == coordinator.demo["sweep"]
    assert o["n_opt"] > 0 and o["d_opt"] > 0 and o["predicted_loss"] > 1.5
    assert o["flops_convention"] in {"exact", "6ND"}


def test_workers_shows_the_fixture_workers(client):
    df = client.workers()
    assert set(df.hostname) == {"test-host-fake-worker", "test-host-live-worker", "test-host-dense-worker"}
    # the live and the dense sweeps' leased trials
    assert sorted(df.running_trials.map(len)) == [0, 1, 1]
    assert set(df.state) <= {"LIVE", "DRAINING", "LOST"}


def test_errors_carry_the_coordinators_code_and_message(client):
    with pytest.raises(isoflop.IsoflopError) as e:
        client.sweep("sw-nope")
    assert e.value.code == "NOT_FOUND"
    with pytest.raises(isoflop.IsoflopError) as e:
        client.curve("tr-x", name="Bad Name")
    assert e.value.code == "INVALID_ARGUMENT" and "name" in e.value.message


def test_a_wrong_token_is_refused(coordinator):
    with isoflop.Client(coordinator.address, token="not-the-token") as c:
        with pytest.raises(isoflop.IsoflopError) as e:
            c.sweeps()
    assert e.value.code == "UNAUTHENTICATED"


def test_readme_example_runs(coordinator, tmp_path):
    """Every ```python block of clients/python/README.md, in order, as one script, against this coordinator."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no python example"
    script = tmp_path / "example.py"
    script.write_text("\n".join(blocks))
    env = dict(os.environ, ISOFLOP_ADDRESS=coordinator.address, ISOFLOP_TOKEN_FILE=coordinator.token_file,
               ISOFLOP_EXAMPLE_SWEEP=coordinator.demo["sweep"], MPLBACKEND="Agg")
    env.pop("ISOFLOP_TOKEN", None)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "N_opt" in out.stdout
