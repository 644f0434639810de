#!/usr/bin/env python3
"""Issue 24 in a real headless browser (ctest dashboard_trial_browser_test, label integration).

Starts the real isoflop-coordinator (heartbeat interval 1 s: a silent worker is lost after 3 s; lease TTL 600 s:
its trial stays RUNNING), makes a running trial with trial_fixture (a fake worker over gRPC) and checks in
Debian's headless Chromium:
  - the one-time login link the coordinator prints logs the browser in once; opened again it is refused with
    a reason; `isoflop dashboard url` makes a new one that works;
  - the trial page of the RUNNING trial shows its resolved config, its train and validation curves, its
    attempts and its log, and follows it live (a new metric point over SSE, a new log line by polling);
  - the workers page shows the silent worker as "lost" (the CLI's word);
  - no JavaScript error on any page.
Screenshots go to $ISOFLOP_TEST_OUT/screenshots and, when it exists, /work/screens.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser_test as bt  # noqa: E402  (helpers: browser, wait_js, check, a11y, check_offline)
from selenium.webdriver.common.by import By  # noqa: E402

COORD = os.environ["ISOFLOP_COORDINATOR_BIN"]
FIXTURE = os.environ["ISOFLOP_TRIAL_FIXTURE_BIN"]
CLI = os.environ.get("ISOFLOP_CLI_BIN", "")
OUT = os.environ.get("ISOFLOP_TEST_OUT", ".")
SHOTS = os.path.join(OUT, "screenshots")
check, wait_js = bt.check, bt.wait_js


def start_coordinator(state):
    log = os.path.join(state, "coordinator.log")
    proc = subprocess.Popen(
        [COORD, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--db", os.path.join(state, "isoflop.db"),
         "--lease-ttl-s", "600", "--heartbeat-interval-s", "1"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    deadline = time.time() + 120
    while time.time() < deadline:
        text = open(log).read()
        m = re.search(r"listening on (\S+)", text)
        d = re.search(r"dashboard on (\S+)", text)
        link = re.search(r"dashboard login link[^:]*: (\S+)", text)
        if m and d and link:
            return proc, m.group(1), d.group(1), link.group(1), log
        if proc.poll() is not None:
            sys.exit("coordinator exited: " + text)
        time.sleep(0.05)
    proc.kill()
    sys.exit("coordinator did not start: " + open(log).read())


def fixture(env, *args):
    out = subprocess.run([FIXTURE, *args], capture_output=True, text=True, timeout=120, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"trial_fixture {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def shot(d, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, name + ".png")
    d.save_screenshot(path)
    if os.path.isdir("/work/screens"):
        shutil.copy(path, os.path.join("/work/screens", name + ".png"))


def js_errors(d, page, allow=()):
    bad = [e["message"] for e in d.get_log("browser")
           if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)]
    check(not bad, f"{page}: no JavaScript error ({bad[:3]})")


def series(d, label):
    return d.execute_script(
        "const c = window.isoflopCharts['trial-loss']; if (!c) return [];"
        "const ds = c.data.datasets.find(s => s.label === arguments[0]);"
        "return ds ? ds.data.map(p => [p.x, p.y]) : [];", label)


def main():
    state = tempfile.mkdtemp(prefix="isoflop-trialpage-")
    proc, address, url, link, log = start_coordinator(state)
    token = open(os.path.join(state, "token")).read().strip()
    env = dict(os.environ, ISOFLOP_TOKEN=token,
               ISOFLOP_WORKER_TOKEN=open(os.path.join(state, "worker_token")).read().strip())
    check(token not in open(log).read(), "the coordinator's log holds no token")
    run = fixture(env, "running", address)
    d = bt.browser()
    beat = None
    try:
        # One-time login link: the first visit logs in, the second is refused.
        check(link.startswith(url + "/login?once="), f"coordinator prints a login link ({link})")
        d.get(link)
        wait_js(d, "location.pathname === '/' && window.isoflopReady === true", what="login link opens the sweeps page")
        check(d.execute_script("return location.pathname") == "/", "login link: logged in, on the sweeps page")
        shot(d, "login-link-used")
        d.delete_all_cookies()
        d.get(link)
        wait_js(d, "location.pathname === '/login.html'", what="spent link goes to the login page")
        err = d.find_element(By.ID, "error")
        check(err.is_displayed() and "already used or has expired" in err.text,
              f"spent login link: the login page says why ({err.text!r})")
        shot(d, "login-link-spent")
        js_errors(d, "login")
        if CLI and os.path.exists(CLI):
            out = subprocess.run([CLI, "dashboard", "url", "--http", url], capture_output=True, text=True,
                                 timeout=60, env=env)
            fresh = out.stdout.strip()
            check(out.returncode == 0 and fresh.startswith(url + "/login?once=") and fresh != link,
                  f"isoflop dashboard url prints a new link ({out.returncode}, {fresh!r}, {out.stderr.strip()!r})")
            check(token not in out.stdout + out.stderr, "isoflop dashboard url never prints the token")
            d.get(fresh)
            wait_js(d, "location.pathname === '/' && window.isoflopReady === true", what="CLI link logs in")
        else:
            print(f"SKIP isoflop dashboard url: no {CLI} (build the isoflop target); logging in with the token")
            bt.login(d, url, token)

        # The trial page of the running trial.
        page = f"{url}/trial.html?id={run['trial']}"
        d.get(page)
        wait_js(d, "window.isoflopReady === true", timeout=30, what="trial page ready")
        state_text = d.execute_script("return document.querySelector('#summary [data-key=state] b').textContent")
        check(state_text == "running", f"trial page: state running ({state_text!r})")
        fields = d.execute_script("return [...document.querySelectorAll('#config tr[data-field]')]"
                                  ".map(r => [r.dataset.field, r.querySelector('td').textContent])")
        cfg = dict(fields)
        check(cfg.get("shape.d_model") == "32" and cfg.get("trial_id") == run["trial"] and "training.lr" in cfg,
              f"trial page: resolved config (d_model {cfg.get('shape.d_model')!r}, {len(cfg)} fields)")
        train, val = series(d, "train loss"), series(d, "val loss")
        check(len(train) == 20 and len(val) == 2, f"trial page: 20 train and 2 val points ({len(train)}, {len(val)})")
        attempts = d.execute_script("return [...document.querySelectorAll('#attempts tbody tr[data-attempt]')]"
                                    ".map(r => [...r.cells].map(c => c.textContent))")
        check(len(attempts) == 1 and attempts[0][1] == "trial-worker" and attempts[0][3] == "running"
              and attempts[0][5] == "12.3K",
              f"trial page: one running attempt on trial-worker at 12.3K tokens/s ({attempts})")
        text = wait_js(d, "document.getElementById('log').textContent.includes('step 20 train_loss') && "
                          "document.getElementById('log').textContent", what="log shown")
        check(bool(text) and "step 1 train_loss" in text, "trial page: the trainer's log")
        # Live: a new point arrives over SSE, a new log line by following.
        fixture(env, "more", address, run["worker"], run["trial"], str(run["attempt"]), str(run["epoch"]), "30",
                str(run["log_offset"]))
        got = wait_js(d, "(() => { const c = window.isoflopCharts['trial-loss'];"
                         "return c && c.data.datasets[0].data.some(p => p.x === 30) &&"
                         "c.data.datasets[1].data.some(p => p.x === 30); })()", timeout=15, what="live point")
        check(bool(got), "trial page: a new train and val point appears live")
        got = wait_js(d, "document.getElementById('log').textContent.includes('live line at step 30')",
                      timeout=15, what="followed log line")
        check(bool(got), "trial page: the log follows the running trial")
        step = wait_js(d, "(() => { const b = document.querySelector('#summary [data-key=step] b');"
                          "return b && b.textContent.startsWith('30 /') && b.textContent; })()",
                       timeout=15, what="summary step 30")
        check(bool(step), f"trial page: the summary follows the trial's step ({step!r})")
        summary = d.execute_script("return document.getElementById('summary').textContent")
        check("null" not in summary and "Val loss (latest)3.5" in summary.replace("\n", ""),
              f"trial page: summary shows the latest val loss, no 'null' ({summary!r})")
        bt.a11y(d, "trial (running)")
        bt.check_offline(d, url, "trial (running)")
        d.set_window_size(1280, 2400)  # the whole page in the screenshot
        shot(d, "trial-running")
        d.set_window_size(1280, 900)
        js_errors(d, "trial")

        # Workers: the silent worker is "lost" (3 heartbeat intervals of 1 s);
        # the one that heartbeats is "live".
        beat = subprocess.Popen([FIXTURE, "beat", address, run["worker"], run["trial"], str(run["attempt"]),
                                 str(run["epoch"]), "60"], stdout=subprocess.PIPE, text=True, env=env)
        beat.stdout.readline()  # its first heartbeat is in
        d.get(url + "/workers.html")
        wait_js(d, "window.isoflopReady === true", what="workers page ready")
        lost = wait_js(d, "(() => { const r = document.querySelector('#workers tr[data-worker=\"gone-worker\"]');"
                          "return r && r.dataset.state === 'lost' && r.querySelector('.worker-state').textContent; })()",
                       timeout=20, what="gone-worker shown lost")
        check(lost == "lost", f"workers page: a silent worker shows as lost ({lost!r})")
        live = d.execute_script("const r = document.querySelector('#workers tr[data-worker=\"trial-worker\"]');"
                                "return r && r.querySelector('.worker-state').textContent;")
        check(live == "live", f"workers page: a worker that heartbeats shows as live ({live!r})")
        bt.a11y(d, "workers (lost)")
        shot(d, "workers-lost")
        js_errors(d, "workers")
    finally:
        if beat is not None:
            beat.kill()
            beat.wait(10)
        d.quit()
        proc.terminate()
        proc.wait(30)
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"{time.time() - t0:.1f} s")
    if bt.FAILURES:
        print(f"{len(bt.FAILURES)} check(s) failed:\n  " + "\n  ".join(bt.FAILURES))
        sys.exit(1)
    print("all checks passed")
