"""Runs trained elsewhere imported from a DataFrame (ImportSweep, docs/import-export.md): the coordinator fits them
like any sweep. After test_client.py (whose tests count the fixture's sweeps)."""
import pandas as pd
import pytest

import isoflop

E, A, B, ALPHA, BETA = 1.8, 400.0, 1200.0, 0.34, 0.28


def law(n, d):
    return E + A / n ** ALPHA + B / d ** BETA


def test_imported_runs_are_fitted_to_their_law(client):
    rows = []
    for budget in (1e15, 3e15, 1e16):
        for n in (2e5, 5e5, 1e6, 2e6, 5e6):
            d = round(budget / (6 * n))
            rows.append({"run": f"r-{budget:g}-{n:g}", "params": int(n), "tokens": d, "budget": budget,
                         "loss": law(n, d)})
    frame = pd.DataFrame(rows)
    sweep_id = client.import_runs(frame, name="pandas-import", dataset="elsewhere")
    assert sweep_id.startswith("im-")
    assert client.import_runs(frame, name="pandas-import", dataset="elsewhere") == sweep_id  # idempotent
    client.wait(sweep_id, timeout=240, poll=0.2)
    fit = client.fit(sweep_id)
    assert fit["final"] and fit["n_points"] == 15
    assert fit["E"] == pytest.approx(E, rel=1e-3)
    assert fit["alpha"] == pytest.approx(ALPHA, rel=1e-2)
    trials = client.trials(sweep_id)
    assert sorted(trials.n_params.unique()) == [200000, 500000, 1000000, 2000000, 5000000]
    assert (trials.state == "SUCCEEDED").all()
    assert client.sweep(sweep_id).config.imported


def test_import_refusals_name_the_field(client):
    with pytest.raises(isoflop.IsoflopError) as e:
        client.import_runs(pd.DataFrame([{"params": 1e6, "tokens": 2e7, "loss": -1.0}]), name="bad")
    assert e.value.code == "INVALID_ARGUMENT"
    assert "runs[0].loss = -1" in str(e.value)
    with pytest.raises(ValueError):
        client.import_runs(pd.DataFrame([{"params": 1e6, "loss": 3.0}]), name="bad")
