"""A real isoflop-coordinator on loopback (temp state dir) with sweeps made by tests/dashboards/dashboard_fixture:
a finished 3 x 4 sweep whose losses follow a known law (fitted), and a live one with a running trial.

Needs ISOFLOP_COORDINATOR_BIN and ISOFLOP_FIXTURE_BIN (set by tests/CMakeLists.txt's python_client_test)."""
import json
import os
import re
import subprocess
import time

import pytest


def _bin(name):
    path = os.environ.get(name)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{name} must name an executable (got {path!r}); run through ctest -R python_client_test")
    return path


class Coordinator:
    def __init__(self, state):
        self.log = os.path.join(state, "coordinator.log")
        self.proc = subprocess.Popen(
            [_bin("ISOFLOP_COORDINATOR_BIN"), "--listen", "127.0.0.1:0", "--db", os.path.join(state, "isoflop.db"),
             "--lease-ttl-s", "600", "--heartbeat-interval-s", "100"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        deadline = time.time() + 120
        while True:
            text = open(self.log).read()
            m = re.search(r"listening on (\S+)", text)
            if m:
                self.address = m.group(1)
                break
            if self.proc.poll() is not None or time.time() > deadline:
                pytest.fail("coordinator did not start: " + text)
            time.sleep(0.05)
        self.token_file = os.path.join(state, "token")
        self.env = dict(os.environ, ISOFLOP_TOKEN=open(self.token_file).read().strip(),
                        ISOFLOP_WORKER_TOKEN=open(os.path.join(state, "worker_token")).read().strip())

    def fixture(self, *args):
        out = subprocess.run([_bin("ISOFLOP_FIXTURE_BIN"), *args, self.address] if args[0] != "report" else
                             [_bin("ISOFLOP_FIXTURE_BIN"), args[0], self.address, *args[1:]],
                             capture_output=True, text=True, timeout=600, env=self.env)
        if out.returncode != 0:
            raise RuntimeError(f"dashboard_fixture {' '.join(args)}: {out.stderr.strip()}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="session")
def coordinator(tmp_path_factory):
    c = Coordinator(str(tmp_path_factory.mktemp("state")))
    c.demo = c.fixture("demo")
    c.dense = c.fixture("dense")  # before "live", whose second trial stays pending for any worker
    c.live = c.fixture("live")
    yield c
    c.stop()


@pytest.fixture()
def client(coordinator, monkeypatch):
    import isoflop
    monkeypatch.delenv("ISOFLOP_TOKEN", raising=False)
    with isoflop.Client(coordinator.address, token_file=coordinator.token_file) as c:
        yield c
