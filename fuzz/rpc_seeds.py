#!/usr/bin/env python3
"""Writes fuzz/corpus/rpc/seed-* inputs for rpc_fuzz, one per request type
added after the first corpus (python3 fuzz/rpc_seeds.py; needs protoc).

An input is read by FuzzedDataProvider (fuzz/rpc_fuzz.cc): the request's wire
bytes come from the front as a string (backslashes doubled, ended by a
backslash and another byte); the integers come from the back: the last byte is
`splice` (bit 0), the one before it the case number, and before that any flag
the case reads after decoding (DrainWorker's `draining`).
"""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def encode(message, text):
    return subprocess.run(
        ["protoc", "-I", str(ROOT / "proto"), "--encode=isoflop.v1." + message,
         "isoflop/v1/service.proto"],
        input=text.encode(), capture_output=True, check=True).stdout


def seed(name, message, text, case, splice=1, flags=b""):
    body = encode(message, text).replace(b"\\", b"\\\\") + b"\\X"
    (ROOT / "fuzz/corpus/rpc" / ("seed-" + name)).write_bytes(
        body + flags + bytes([case, splice]))


seed("list-workers", "ListWorkersRequest", "", 10)
seed("drain-worker", "DrainWorkerRequest", 'worker_id: "wk-fuzz"', 11, 0, b"\x01")
seed("undrain-worker", "UndrainWorkerRequest", 'worker_id: "wk-fuzz"', 12, 0,
     b"\x00")
seed("pause-sweep", "PauseSweepRequest", 'sweep_id: "x"', 13)
seed("resume-sweep", "ResumeSweepRequest", 'sweep_id: "x"', 14)
seed("retry-sweep", "RetrySweepRequest", 'sweep_id: "x" failed: true', 15)
seed("report-logs", "ReportLogsRequest",
     'offset: 0 data: "step 1/10  loss 4.2\\n"', 16)
seed("get-trial-logs", "GetTrialLogsRequest", "attempt: 1 offset: 3", 17)
seed("submit-with-id", "SubmitSweepRequest", """id: "fuzz-id" config {
  name: "f" model { vocab_size: 64 context: 16 }
  grid { flops_budgets: 1e9 model_shapes { d_model: 16 n_layers: 1 n_heads: 2 } }
  training { batch_sequences: 4 lr: 1e-3 } data { dataset: "fuzz" } }""", 8, 0)
