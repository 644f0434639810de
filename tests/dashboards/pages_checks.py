"""Sweep, compare and report page checks (issue 24: x-axis selector, training
and validation curves, colour by budget and size with grouped legends, a y
axis that fits the data, full trial ids with copy buttons, a paused sweep
shown as paused, one count per state; the compare page with two sweeps on one
profile and one frontier plot; the report's law with 95% intervals and its
legends off the data). Run by browser_test.py's main test on its coordinator
and browser (one coordinator, one Chromium for every page check): `run(h, c,
d, demo)` with `h` the browser_test module (check, fixture, load, shot, ...).
Screenshots go to the test's screenshot dir and, when it can be written,
$ISOFLOP_SCREENS_DIR (default /work/screens) for a closing note.
"""
import os
import shutil

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

SCREENS = os.environ.get("ISOFLOP_SCREENS_DIR", "/work/screens")


def _shot(h, d, name):
    h.shot(d, name)
    try:
        os.makedirs(SCREENS, exist_ok=True)
        shutil.copy(os.path.join(h.SHOTS, name + ".png"), os.path.join(SCREENS, name + ".png"))
    except OSError:
        pass  # a CI machine without that directory: the test's own copy stays


def _errors(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


# The curves chart's plotted domain and what it was computed from.
CURVES_JS = r"""
const c = window.isoflopCharts.curves, ds = c.data.datasets.filter(s => !s.isoflopLegend && s.data.length);
return {x: [c.scales.x.min, c.scales.x.max], y: [c.scales.y.min, c.scales.y.max], title: c.options.scales.x.title.text,
        view: window.isoflopCurveView,
        data_y: [Math.min(...ds.flatMap(s => s.data.map(p => p.y))), Math.max(...ds.flatMap(s => s.data.map(p => p.y)))],
        legend: c.legend.legendItems.map(i => i.text),
        metrics: [...new Set(ds.map(s => s.metric))],
        colours: [...new Set(ds.filter(s => s.metric === 'train_loss').map(s => s.borderColor))].length,
        // Each trial's last plotted x against its last step times its per-step scale.
        ends: ds.filter(s => s.metric === 'train_loss').map(s => [s.data[s.data.length - 1].x, s.raw[s.raw.length - 1][0],
                                                                  s.meta.tokens_per_step, s.meta.flops_per_step])};
"""


def _pick(h, d, select_id, value, what):
    Select(d.find_element(By.ID, select_id)).select_by_value(value)
    return h.wait_js(d, f"window.isoflopCurveView && window.isoflopCurveView.{what} === '{value}'",
                     what=f"{select_id} = {value}")


def sweep_page(h, c, d, second):
    h.load(d, c.url + "/sweep.html?id=" + second["sweep"])
    h.wait_js(d, "window.isoflopCurveView", what="curves drawn")
    r = d.execute_script(CURVES_JS)
    h.check(set(r["metrics"]) == {"train_loss", "val_loss"},
            f"sweep page: training and validation curves drawn ({r['metrics']})")
    # Grouped legend: one entry per budget (3) and one for validation, no trial ids.
    h.check(len(r["legend"]) == 4 and all(t.startswith("C = ") for t in r["legend"][:3])
            and not any("tr-" in t for t in r["legend"]),
            f"sweep page: legend grouped by budget, not one entry per trial ({r['legend']})")
    h.check(r["colours"] >= 6, f"sweep page: budgets x sizes drawn in distinct shades ({r['colours']} colours)")
    lo, hi = r["data_y"]
    h.check(r["y"][0] >= lo - 0.1 * (hi - lo) and r["y"][1] <= hi + 0.1 * (hi - lo) and r["y"][0] <= lo and r["y"][1] >= hi,
            f"sweep page: y axis fits the data (axis {r['y']}, data [{lo:.3f}, {hi:.3f}])")
    fit = h.wait_js(d, "!document.getElementById('fit-summary').hidden && "
                       "[document.getElementById('fit-level').textContent, document.getElementById('fit-backtest').textContent]",
                    what="fit summary")
    h.check(bool(fit) and fit[0] in ("ok", "weak", "unidentified") and fit[1].startswith("Backtest:"),
            f"sweep page: the fit's verdict and backtest at the top ({fit})")
    step_max = r["x"][1]
    _shot(h, d, "pages-sweep-step")
    # x axis: FLOPs, then tokens; the plotted domain changes with it.
    _pick(h, d, "c-x", "flops", "x")
    f = d.execute_script(CURVES_JS)
    ok = all(abs(x - step * fps) <= 1e-9 * x for x, step, _, fps in f["ends"]) and f["ends"]
    h.check(f["title"].startswith("compute spent") and f["x"][1] > 1e3 * step_max and f["x"][1] > 1e10 and ok,
            f"x-axis selector: FLOPs changes the plotted domain (step max {step_max:g} -> {f['x'][1]:g}; "
            f"last x = last step x FLOPs/step for every curve: {bool(ok)})")
    _shot(h, d, "pages-sweep-flops")
    _pick(h, d, "c-x", "tokens", "x")
    t = d.execute_script(CURVES_JS)
    ok = all(abs(x - step * tps) <= 1e-9 * x for x, step, tps, _ in t["ends"]) and t["ends"]
    h.check(t["title"] == "tokens seen" and step_max < t["x"][1] < f["x"][1] and ok,
            f"x-axis selector: tokens changes the plotted domain ({t['x'][1]:g}; last x = step x tokens/step: {bool(ok)})")
    # Training time from the trial's tokens/s (the fixture reports 4000).
    _pick(h, d, "c-x", "time", "x")
    w = d.execute_script(CURVES_JS)
    ok = w["ends"] and all(abs(x - step * tps / 4000) <= 1e-6 * x for x, step, tps, _ in w["ends"])
    h.check(w["title"].startswith("training time") and bool(ok),
            f"x-axis selector: training time = step x tokens/step / tokens/s ({w['x']}, {w['ends'][:2]})")
    _pick(h, d, "c-colour", "size", "colourBy")
    s = d.execute_script(CURVES_JS)
    h.check(len(s["legend"]) == 5 and all(t.startswith("N = ") for t in s["legend"][:4]),
            f"sweep page: colour by size gives one legend entry per size ({s['legend']})")
    # Smoothing: the plotted training curve changes, the raw points stay.
    d.execute_script("const e = document.getElementById('c-smooth'); e.value = '0.9';"
                     "e.dispatchEvent(new Event('input', {bubbles: true}));")
    h.wait_js(d, "window.isoflopCurveView.smooth === 0.9", what="smoothing 0.9")
    sm = d.execute_script("const s = window.isoflopCharts.curves.data.datasets.find(s => s.metric === 'train_loss' && s.raw.length > 5);"
                          "return s.data.slice(1, 6).some((p, i) => Math.abs(p.y - s.raw[i + 1][1]) > 1e-9);")
    h.check(bool(sm), "sweep page: smoothing changes the plotted curve")
    _pick(h, d, "c-x", "step", "x")
    # Full trial ids with a copy button.
    ids = d.execute_script("""return [...document.querySelectorAll('#trials tbody tr')].map(r => {
        const cell = r.querySelector('td.trial-id');
        return [cell.querySelector('a, span').textContent, r.isoflopTrial.id, !!cell.querySelector('button.copy')];});""")
    h.check(ids and all(shown == full and len(full) > 12 and button for shown, full, button in ids),
            f"sweep page: full trial ids with copy buttons ({ids[:2]})")
    d.find_element(By.CSS_SELECTOR, "#trials tbody tr td.trial-id button.copy").click()
    copied = h.wait_js(d, "window.isoflopCopied", what="copy")
    h.check(copied == ids[0][1], f"sweep page: Copy copies the full id ({copied!r})")
    labels = d.execute_script("return [...document.querySelectorAll('#summary > div > span.muted')].map(e => e.textContent.toLowerCase())")
    h.check(len(labels) == len(set(labels)) and "running" in labels,
            f"sweep page: each count once in the header ({labels})")
    h.a11y(d, "sweep page (second)")
    errors = _errors(d)
    h.check(not errors, f"sweep page controls: no JavaScript error ({errors[:2]})")


def paused_sweep(h, c, d, paused):
    h.load(d, c.url + "/sweep.html?id=" + paused["sweep"])
    state = d.find_element(By.CSS_SELECTOR, "#sweep-state b").text
    h.check(state == "paused", f"paused sweep: the sweep page says paused ({state!r})")
    _shot(h, d, "pages-sweep-paused")
    h.load(d, c.url + "/")
    row = d.execute_script("const r = document.querySelector(`#sweeps tr[data-sweep='${arguments[0]}']`);"
                           "return r && r.children[1].textContent;", paused["sweep"])
    h.check(row == "paused", f"paused sweep: the sweeps page says paused ({row!r})")
    # The sweep page's buttons: resume, pause again (stored: a reload says
    # paused), then cancel (after the confirmation).
    h.load(d, c.url + "/sweep.html?id=" + paused["sweep"])
    state = lambda: d.find_element(By.CSS_SELECTOR, "#sweep-state b").text
    d.find_element(By.ID, "act-resume").click()
    h.wait_js(d, "document.querySelector('#sweep-state b').textContent === 'running'", what="resumed")
    h.check(state() == "running" and not d.find_element(By.ID, "act-pause").get_attribute("hidden"),
            f"sweep page: Resume resumes the paused sweep ({state()!r}) and offers Pause")
    d.find_element(By.ID, "act-pause").click()
    h.wait_js(d, "document.querySelector('#sweep-state b').textContent === 'paused'", what="paused again")
    h.load(d, c.url + "/sweep.html?id=" + paused["sweep"])
    h.check(state() == "paused", f"sweep page: Pause is stored (after a reload: {state()!r})")
    d.find_element(By.ID, "act-cancel").click()
    d.switch_to.alert.accept()
    h.wait_js(d, "document.querySelector('#sweep-state b').textContent === 'cancelled'", what="cancelled")
    h.check(state() == "cancelled" and d.find_element(By.ID, "act-cancel").get_attribute("hidden") is not None,
            f"sweep page: Cancel ends the sweep ({state()!r}) and hides the buttons that no longer apply")
    _shot(h, d, "pages-sweep-cancelled")
    errors = _errors(d)
    h.check(not errors, f"paused sweep pages: no JavaScript error ({errors[:2]})")


def compare_page(h, c, d, demo, second):
    h.load(d, c.url + f"/compare.html?id={demo['sweep']}&id={second['sweep']}")
    r = d.execute_script("""
      const per = (cid, pred) => { const c = window.isoflopCharts[cid]; const out = {};
        for (const ds of c.data.datasets) if (ds.sweep && pred(ds)) out[ds.sweep] = (out[ds.sweep] || 0) + ds.data.length;
        return out; };
      return {profiles: per('compare-profiles', ds => !ds.showLine), frontier: per('compare-frontier', ds => ds.label.endsWith('N_opt(C)')),
              legend: window.isoflopCharts['compare-profiles'].legend.legendItems.map(i => i.text),
              laws: [...document.querySelectorAll('#laws tbody tr')].map(r => [r.dataset.sweep, r.children[2].textContent]),
              diff: [...document.querySelectorAll('#diff tbody tr[data-field]')].map(r => r.dataset.field)};""")
    both = [demo["sweep"], second["sweep"]]
    h.check(all(r["profiles"].get(s, 0) == 12 for s in both),
            f"compare page: both sweeps' 12 points on one IsoFLOP-profile plot ({r['profiles']})")
    h.check(all(r["frontier"].get(s, 0) > 1 for s in both),
            f"compare page: both sweeps' N_opt(C) on one frontier plot ({r['frontier']})")
    h.check(len(r["legend"]) == 2, f"compare page: one legend entry per sweep ({r['legend']})")
    h.check([s for s, _ in r["laws"]] == both and all("[" in a for _, a in r["laws"]),
            f"compare page: each sweep's law with 95% intervals ({r['laws']})")
    h.check("data.dataset" in r["diff"] and "name" in r["diff"] and "grid.flops_budgets" not in r["diff"],
            f"compare page: config diff lists the dataset and name, not the shared budgets ({r['diff']})")
    h.check_ticks(d, "compare page", ["compare-profiles", "compare-frontier"])
    h.a11y(d, "compare")
    _shot(h, d, "pages-compare")
    h.check_offline(d, c.url, "compare")
    errors = _errors(d)
    h.check(not errors, f"compare page: no JavaScript error ({errors[:2]})")


def report_page(h, c, d, demo):
    h.load(d, c.url + "/report.html?id=" + demo["sweep"])
    cis = d.execute_script("return [...document.querySelectorAll('#params td[data-ci]')].map(td => td.textContent)")
    h.check(len(cis) == 7 and all(t.startswith("[") for t in cis), f"report: the law's parameters with 95% intervals ({cis})")
    # Every legend entry of every SVG figure lies right of the plot frame.
    r = d.execute_script("""
      return [...document.querySelectorAll('#figures svg')].map((s) => {
        const frame = s.querySelector('rect[stroke="#333"]');
        const right = frame.x.baseVal.value + frame.width.baseVal.value;
        const keys = [...s.querySelectorAll('rect[width="10"]')].map(k => k.x.baseVal.value);
        return [keys.length, keys.every(x => x > right)];
      });""")
    h.check(r and sum(n for n, _ in r) > 0 and all(ok for _, ok in r),
            f"report: legends beside the plots, off the data ([entries, all right of the frame] per figure: {r})")
    _shot(h, d, "pages-report")
    errors = _errors(d)
    h.check(not errors, f"report: no JavaScript error ({errors[:2]})")


def run(h, c, d, demo):
    d.set_window_size(1280, 900)
    d.get_log("browser")
    second = h.fixture("second", c.address)
    paused = h.fixture("paused", c.address)
    sweep_page(h, c, d, second)
    paused_sweep(h, c, d, paused)
    compare_page(h, c, d, demo, second)
    report_page(h, c, d, demo)
