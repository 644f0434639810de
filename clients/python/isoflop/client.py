"""A thin client of the isoflop coordinator's gRPC API (proto/isoflop/v1/service.proto).

Every table comes back as a pandas DataFrame with one row per sweep, trial, point or worker; protos are there for
what a table would flatten badly (a sweep's config, a fit's bootstrap samples). The client reads what the
`isoflop` CLI reads, with the same settings: ISOFLOP_ADDRESS, ISOFLOP_TOKEN or ISOFLOP_TOKEN_FILE, ISOFLOP_TLS_CA.
"""
from __future__ import annotations

import math
import os
import time
from typing import Iterable, Optional, Sequence, Union

import grpc
import pandas as pd
from google.protobuf import text_format

from isoflop.v1 import config_pb2, service_pb2, service_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
# The most points one GetTrialMetrics answer carries (coordinator/service/metrics_read.h).
_METRICS_PAGE = 100000
_ENDED_SWEEP = {"SWEEP_SUCCEEDED", "SWEEP_FAILED", "SWEEP_CANCELLED"}


class IsoflopError(RuntimeError):
    """A call the coordinator refused or could not answer: `code` is the gRPC status name (NOT_FOUND, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _read_token(token: Optional[str], token_file: Optional[str]) -> str:
    if token:
        return token.strip()
    if os.environ.get("ISOFLOP_TOKEN"):
        return os.environ["ISOFLOP_TOKEN"].strip()
    path = token_file or os.environ.get("ISOFLOP_TOKEN_FILE")
    if not path:
        raise ValueError("no token: pass token= or token_file=, or set ISOFLOP_TOKEN or ISOFLOP_TOKEN_FILE "
                         "(the coordinator writes its user token to STATE/token beside its --db)")
    with open(path, encoding="utf-8") as f:
        value = f.read().strip()
    if not value:
        raise ValueError(f"token file {path} is empty")
    return value


def _nan_if_unset(x: float) -> float:
    return x if x == x else math.nan  # NaN stays NaN


class Client:
    """Connects to one coordinator. `address` host:port (default ISOFLOP_ADDRESS, else 127.0.0.1:50051);
    `tls_ca` the PEM file of the CA that signed the coordinator's certificate (default ISOFLOP_TLS_CA; unset:
    plain TCP); `timeout` seconds per call."""

    def __init__(self, address: Optional[str] = None, token: Optional[str] = None,
                 token_file: Optional[str] = None, tls_ca: Optional[str] = None, timeout: float = 30.0):
        self.address = address or os.environ.get("ISOFLOP_ADDRESS") or DEFAULT_ADDRESS
        self.timeout = timeout
        self._metadata = (("authorization", "Bearer " + _read_token(token, token_file)),)
        ca = tls_ca or os.environ.get("ISOFLOP_TLS_CA")
        if ca:
            with open(ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(self.address, creds)
        else:
            self._channel = grpc.insecure_channel(self.address)
        self._sweeps = service_pb2_grpc.SweepServiceStub(self._channel)
        self._cluster = service_pb2_grpc.ClusterServiceStub(self._channel)
        self._analysis = service_pb2_grpc.AnalysisServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as e:  # one error type for callers, with the coordinator's own message
            raise IsoflopError(e.code().name, e.details() or "") from None

    # ------------------------------------------------------------------ sweeps

    def submit(self, config: Union[str, os.PathLike, config_pb2.SweepConfig], sweep_id: str = "") -> str:
        """Submits a sweep: a SweepConfig, or the path of a text-format config (configs/*.textproto). Returns the
        sweep id (the same config submitted twice gives the same id and starts nothing new)."""
        if not isinstance(config, config_pb2.SweepConfig):
            with open(config, encoding="utf-8") as f:
                config = text_format.Parse(f.read(), config_pb2.SweepConfig())
        resp = self._call(self._sweeps.SubmitSweep, service_pb2.SubmitSweepRequest(config=config, id=sweep_id))
        return resp.sweep_id

    def import_runs(self, runs: pd.DataFrame, name: str, sweep_id: str = "", dataset: str = "") -> str:
        """Adds runs trained elsewhere as a fit-only sweep (ImportSweep; docs/import-export.md): one row per run
        with columns params, tokens, loss and optional flops (default 6 N D), budget, n_non_embedding and run (its
        name; default row-I). Returns the sweep id; the coordinator fits it at once (`wait(id)` waits for the
        fit). The same runs imported again give the same id and add nothing."""
        missing = [c for c in ("params", "tokens", "loss") if c not in runs.columns]
        if missing:
            raise ValueError(f"runs: missing column(s) {missing} (need params, tokens, loss)")
        req = service_pb2.ImportSweepRequest(name=name, id=sweep_id, dataset=dataset)
        for i, row in enumerate(runs.itertuples(index=False)):
            r = row._asdict()
            req.runs.add(run=str(r.get("run", f"row-{i}")), params=int(r["params"]), tokens=int(r["tokens"]),
                         loss=float(r["loss"]), flops=float(r.get("flops", 0) or 0),
                         budget=float(r.get("budget", 0) or 0),
                         n_non_embedding=int(r.get("n_non_embedding", 0) or 0))
        return self._call(self._sweeps.ImportSweep, req).sweep_id

    def sweep(self, sweep_id: str) -> service_pb2.Sweep:
        """The whole sweep as the coordinator holds it: config, state, trials, stored fit."""
        return self._call(self._sweeps.GetSweep, service_pb2.GetSweepRequest(sweep_id=sweep_id))

    def sweeps(self) -> pd.DataFrame:
        """One row per sweep: id, name, state, paused, created, trial counts by state, has_fit."""
        resp = self._call(self._sweeps.ListSweeps, service_pb2.ListSweepsRequest())
        rows = []
        for s in resp.sweeps:
            counts = dict(s.trial_counts)
            rows.append({
                "sweep_id": s.id, "name": s.config.name, "state": service_pb2.SweepState.Name(s.state),
                "paused": s.paused, "created": pd.to_datetime(s.created_unix_ms, unit="ms", utc=True),
                "trials": sum(counts.values()),
                **{k.lower(): counts.get(k, 0) for k in ("PENDING", "LEASED", "RUNNING", "SUCCEEDED", "FAILED",
                                                           "CANCELLED")},
                "has_fit": s.HasField("fit"), "dataset": s.config.data.dataset,
            })
        return pd.DataFrame(rows, columns=None if rows else ["sweep_id", "name", "state"])

    def trials(self, sweep_id: str) -> pd.DataFrame:
        """One row per trial of the sweep: its cell (shape, N, D, C), hyperparameters, state and results."""
        sweep = self.sweep(sweep_id)
        rows = []
        for t in sweep.trials:
            spec = t.spec
            flops = spec.flops if spec.flops > 0 else spec.tokens * spec.flops_per_token
            rows.append({
                "trial_id": spec.trial_id, "sweep_id": spec.sweep_id, "state": service_pb2.TrialState.Name(t.state),
                "d_model": spec.shape.d_model, "n_layers": spec.shape.n_layers, "n_heads": spec.shape.n_heads,
                "d_ff": spec.shape.d_ff, "n_params": spec.n_total, "n_non_embedding": spec.n_non_embedding,
                "tokens": spec.tokens, "flops": flops, "flops_budget": spec.flops_budget,
                "flops_per_token": spec.flops_per_token, "steps": spec.steps, "lr": spec.training.lr,
                "batch_sequences": spec.training.batch_sequences, "dataset": spec.dataset,
                "attempt": t.attempt, "worker_id": t.worker_id, "step": t.step,
                "train_loss": _nan_if_unset(t.train_loss), "val_loss": _nan_if_unset(t.val_loss),
                "tokens_per_s": t.tokens_per_s, "error": t.error,
                "updated": pd.to_datetime(t.updated_unix_ms, unit="ms", utc=True),
            })
        return pd.DataFrame(rows)

    def cancel(self, sweep_id: str) -> service_pb2.Sweep:
        return self._call(self._sweeps.CancelSweep, service_pb2.CancelSweepRequest(sweep_id=sweep_id))

    def pause(self, sweep_id: str) -> service_pb2.Sweep:
        return self._call(self._sweeps.PauseSweep, service_pb2.PauseSweepRequest(sweep_id=sweep_id))

    def resume(self, sweep_id: str) -> service_pb2.Sweep:
        return self._call(self._sweeps.ResumeSweep, service_pb2.ResumeSweepRequest(sweep_id=sweep_id))

    def wait(self, sweep_id: str, timeout: float = 3600.0, poll: float = 1.0) -> service_pb2.Sweep:
        """Polls until the sweep has ended and its final fit is stored (or it has no fit to make);
        TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.sweep(sweep_id)
            ended = service_pb2.SweepState.Name(s.state) in _ENDED_SWEEP
            if ended and (s.fit.final or s.trial_counts.get("SUCCEEDED", 0) == 0 or
                          service_pb2.SweepState.Name(s.state) == "SWEEP_CANCELLED"):
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} still {service_pb2.SweepState.Name(s.state)} "
                                   f"after {timeout} s")
            time.sleep(poll)

    # ------------------------------------------------------------------ curves and logs

    def curve(self, trial_id: str, name: str = "train_loss", page_size: int = _METRICS_PAGE) -> pd.DataFrame:
        """Every point of one metric of one trial (no downsampling): columns step, value. Read in pages of
        `page_size` points (at most 100,000)."""
        steps, values, after = [], [], None
        while True:
            req = service_pb2.GetTrialMetricsRequest(trial_id=trial_id, name=name, limit=page_size)
            if after is not None:
                req.after_step = after
            resp = self._call(self._sweeps.GetTrialMetrics, req)
            steps.extend(resp.steps)
            values.extend(resp.values)
            if not resp.more:
                break
            after = resp.next_after_step
        return pd.DataFrame({"step": pd.Series(steps, dtype="int64"), "value": pd.Series(values, dtype="float64")})

    def curves(self, sweep_id: str, names: Sequence[str] = ("train_loss", "val_loss"),
               trial_ids: Optional[Iterable[str]] = None) -> pd.DataFrame:
        """Long table of full-resolution curves: trial_id, name, step, value, with the trial's n_params, tokens,
        flops_budget and tokens_seen (= step x tokens per step) for plotting against tokens or FLOPs."""
        trials = self.trials(sweep_id)
        if trial_ids is not None:
            trials = trials[trials["trial_id"].isin(list(trial_ids))]
        parts = []
        for t in trials.itertuples(index=False):
            tokens_per_step = t.tokens / t.steps if t.steps else math.nan
            for name in names:
                c = self.curve(t.trial_id, name)
                if c.empty:
                    continue
                c.insert(0, "name", name)
                c.insert(0, "trial_id", t.trial_id)
                c["n_params"] = t.n_params
                c["flops_budget"] = t.flops_budget
                c["tokens_seen"] = c["step"] * tokens_per_step
                parts.append(c)
        if not parts:
            return pd.DataFrame(columns=["trial_id", "name", "step", "value", "n_params", "flops_budget",
                                         "tokens_seen"])
        return pd.concat(parts, ignore_index=True)

    def logs(self, trial_id: str, attempt: int = 0) -> str:
        """The trainer's output of one attempt (0: the latest), as much as the coordinator keeps."""
        out, offset = [], 0
        while True:
            r = self._call(self._sweeps.GetTrialLogs,
                           service_pb2.GetTrialLogsRequest(trial_id=trial_id, attempt=attempt, offset=offset))
            out.append(r.data)
            if r.next_offset <= max(offset, r.first_offset):
                break
            offset = r.next_offset
        return b"".join(out).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ fits

    def fit(self, sweep_id: str, refit: bool = False) -> Optional[dict]:
        """The sweep's stored fit as a dict (None when none is stored): E, A, B, alpha, beta, their 95% intervals
        (`ci95`), the exponents a and b, Approach 2's law, the verdict and backtest. `refit=True` asks the
        coordinator to fit now (FitSweep) and answers that fit."""
        if refit:
            f = self._call(self._analysis.FitSweep, service_pb2.FitSweepRequest(sweep_id=sweep_id), timeout=600)
        else:
            s = self.sweep(sweep_id)
            if not s.HasField("fit"):
                return None
            f = s.fit
        out = {
            "E": f.e, "A": f.a, "B": f.b, "alpha": f.alpha, "beta": f.beta,
            "a": f.beta / (f.alpha + f.beta) if f.alpha + f.beta > 0 else math.nan,
            "b": f.alpha / (f.alpha + f.beta) if f.alpha + f.beta > 0 else math.nan,
            "n_points": f.n_points, "final": f.final, "message": f.message,
            "ci95": {k: (v.low, v.high) for k, v in f.ci95.items()},
            "flops_convention": f.flops.name,
            "verdict": {"level": f.verdict.level, "reasons": list(f.verdict.reasons)} if f.HasField("verdict")
            else None,
            "backtest": {"holdout_flops": f.backtest.holdout_flops, "predicted_loss": f.backtest.predicted_loss,
                         "observed_loss": f.backtest.observed_loss, "relative_error": f.backtest.relative_error}
            if f.HasField("backtest") else None,
            "approach2": {"n_opt_coef": f.approach2.n_opt_coef, "n_opt_exponent": f.approach2.n_opt_exponent,
                          "d_opt_coef": f.approach2.d_opt_coef, "d_opt_exponent": f.approach2.d_opt_exponent}
            if f.HasField("approach2") else None,
            "proto": f,
        }
        return out

    def optimal(self, flops: float, sweep_id: str = "", approach: int = 3) -> dict:
        """The compute-optimal N and D for a budget of `flops` FLOPs under the sweep's stored fit, with 95%
        intervals when the fit has bootstrap samples."""
        r = self._call(self._analysis.Optimal,
                       service_pb2.OptimalRequest(flops=flops, sweep_id=sweep_id, approach=approach))
        return {"flops": r.flops, "n_opt": r.n_opt, "d_opt": r.d_opt, "predicted_loss": r.predicted_loss,
                "sweep_id": r.sweep_id, "approach": r.approach, "flops_convention": r.flops_convention,
                "ci95": {k: (v.low, v.high) for k, v in r.ci95.items()}}

    # ------------------------------------------------------------------ workers

    def workers(self) -> pd.DataFrame:
        """One row per registered worker: id, hostname, state (LIVE, DRAINING, LOST), resources, running trials."""
        resp = self._call(self._cluster.ListWorkers, service_pb2.ListWorkersRequest())
        rows = [{
            "worker_id": w.worker_id, "hostname": w.resources.hostname,
            "state": service_pb2.WorkerState.Name(w.state).removeprefix("WORKER_"),
            "gpus": w.resources.gpus, "cpu_slots": w.resources.cpu_slots, "draining": w.draining,
            "running_trials": list(w.running_trial_ids), "heartbeat_age_ms": w.heartbeat_age_ms,
        } for w in resp.workers]
        return pd.DataFrame(rows, columns=None if rows else ["worker_id", "hostname", "state"])
