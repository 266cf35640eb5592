"""The HTML report of `cardlink backtest`, opened in headless Chromium.

    CARDLINK_BIN=target/debug/cardlink python3 -m unittest discover -s tools/browser -p 'test_*.py' -v

Simulates a small feed, backtests two offer files side by side, opens the
report with pagecheck.py and checks that it renders with no console error
or exception, that the charts are there and drawn, that nothing is fetched,
and that every figure the page shows equals the JSON report's.

CARDLINK_BIN names the cardlink binary; without it, target/debug/cardlink
is used when it exists (scripts/test builds it first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PAGECHECK = HERE / "pagecheck.py"
TESTDATA = ROOT / "crates" / "cardlink-backtest" / "testdata"

# Gathers, in the page, what the checks need: every element tied to a JSON
# figure, and the charts with their marks and rendered sizes.
COLLECT = r"""
(() => {
  const figures = [...document.querySelectorAll('[data-json]')].map(e => ({
    pointer: e.getAttribute('data-json'),
    value: e.hasAttribute('data-value') ? e.getAttribute('data-value') : e.textContent,
    attr: e.hasAttribute('data-value'),
  }));
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const r = svg.getBoundingClientRect();
    const card = svg.closest('[data-offer]');
    const section = svg.closest('section.scenario');
    return {
      chart: svg.dataset.chart,
      offer: card ? section.dataset.scenario + ':' + card.dataset.offer : null,
      detail: !!svg.closest('.card.offer'),
      width: r.width,
      height: r.height,
      bars: svg.querySelectorAll('rect.bar').length,
      lines: svg.querySelectorAll('polyline.series').length,
      points: svg.querySelectorAll('circle.pt').length,
      budget: svg.querySelectorAll('line.budget').length,
    };
  });
  return {
    title: document.title,
    scenarios: document.querySelectorAll('section.scenario').length,
    comparison: !!document.getElementById('comparison'),
    comparisonColumns: document.querySelectorAll('#comparison thead th').length,
    offerRows: [...document.querySelectorAll('table.offers tbody tr')].map(r => r.dataset.offer),
    details: [...document.querySelectorAll('.card.offer')].map(c =>
      c.closest('section.scenario').dataset.scenario + ':' + c.dataset.offer),
    figures,
    charts,
    resources: performance.getEntriesByType('resource').map(e => e.name),
    bodyHeight: document.body.scrollHeight,
    overflowX: document.documentElement.scrollWidth > window.innerWidth + 1,
  };
})()
"""


def cardlink_bin() -> Path | None:
    given = os.environ.get("CARDLINK_BIN")
    if given:
        return Path(given)
    default = ROOT / "target" / "debug" / "cardlink"
    return default if default.exists() else None


def resolve(doc, pointer: str):
    """RFC 6901."""
    node = doc
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


class BacktestReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        binary = cardlink_bin()
        if binary is None:
            raise unittest.SkipTest("no cardlink binary: build it (cargo build -p cardlink) or set CARDLINK_BIN")
        if not binary.exists():
            raise AssertionError(f"CARDLINK_BIN={binary} does not exist")
        cls.dir = tempfile.TemporaryDirectory()
        d = Path(cls.dir.name)
        cls.json_path, cls.html_path = d / "report.json", d / "report.html"

        def run(*args: str) -> None:
            proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise AssertionError(f"cardlink {' '.join(args)} failed: {proc.stderr}")

        run(
            "simulate", "--count", "60000", "--days", "7", "--cards", "4000", "--merchants", "800",
            "--offer-count", "80", "--seed", "11",
            "--events", str(d / "feed.pb"), "--offers", str(d / "offers.json"),
        )
        run(
            "backtest",
            "--offers", f"simulated={d / 'offers.json'}",
            "--offers", str(TESTDATA / "coffee-all-day.json"),
            "--events", str(d / "feed.pb"),
            "--json", str(cls.json_path), "--report", str(cls.html_path),
            "--detail-offers", "6", "--quiet",
        )
        cls.report = json.loads(cls.json_path.read_text())
        proc = subprocess.run(
            [sys.executable, str(PAGECHECK), str(cls.html_path), "--wait-ms", "200", "--eval", COLLECT],
            capture_output=True, text=True, timeout=180,
        )
        cls.rc, cls.stderr = proc.returncode, proc.stderr
        cls.check_out = json.loads(proc.stdout)
        cls.page = cls.check_out["evals"][0] if cls.check_out["evals"] else None

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dir.cleanup()

    def test_page_loads_without_errors(self) -> None:
        self.assertEqual(self.rc, 0, self.stderr)
        self.assertEqual(self.check_out["console_errors"], [])
        self.assertEqual(self.check_out["exceptions"], [])
        self.assertIsNotNone(self.page)
        self.assertEqual(self.page["title"], "Backtest: 2 offer files side by side")
        self.assertGreater(self.page["bodyHeight"], 2000)
        self.assertFalse(self.page["overflowX"], "the page is wider than the window")

    def test_nothing_is_fetched(self) -> None:
        self.assertEqual(self.page["resources"], [])
        html = self.html_path.read_text()
        self.assertNotIn("<script", html)
        self.assertNotIn("https://", html)

    def test_every_figure_shown_equals_the_json(self) -> None:
        figures = self.page["figures"]
        self.assertGreater(len(figures), 500)
        wrong = []
        for f in figures:
            want = resolve(self.report, f["pointer"])
            want = want if isinstance(want, str) else json.dumps(want)
            shown = f["value"] if f["attr"] else f["value"].replace(",", "").strip()
            if shown != want:
                wrong.append((f["pointer"], shown, want))
        self.assertEqual(wrong, [])
        # The headline figures are among them.
        pointers = {f["pointer"] for f in figures}
        for p in [
            "/feed/records",
            "/scenarios/0/totals/rewarded_transactions",
            "/scenarios/1/totals/distinct_cards",
            "/scenarios/1/offers/0/cost",
            "/scenarios/1/offers/0/effective_rate",
            "/scenarios/1/competition/contested_purchases",
        ]:
            self.assertIn(p, pointers)
        for unit in self.report["scenarios"][1]["totals"]["cost"]:
            self.assertIn(f"/scenarios/1/totals/cost/{unit}", pointers)

    def test_scenarios_side_by_side(self) -> None:
        self.assertTrue(self.page["comparison"])
        self.assertEqual(self.page["scenarios"], 2)
        self.assertEqual(self.page["comparisonColumns"], 3)  # a label column and one per scenario
        compare = [c for c in self.page["charts"] if c["chart"].startswith("compare-")]
        self.assertGreaterEqual(len(compare), 1)
        self.assertTrue(all(c["lines"] == 2 for c in compare), compare)
        ids = [o["id"] for s in self.report["scenarios"] for o in s["offers"]]
        self.assertEqual(self.page["offerRows"], ids)

    def test_charts_are_drawn_for_each_detailed_offer(self) -> None:
        charts = [c for c in self.page["charts"] if c["detail"]]
        details = self.page["details"]
        self.assertGreaterEqual(len(details), 6)
        days = len(self.report["days"])
        for offer in details:
            mine = {c["chart"]: c for c in charts if c["offer"] == offer}
            self.assertEqual(set(mine), {"cost-over-time", "hours", "weekdays", "networks"}, offer)
            for c in mine.values():
                self.assertGreater(c["width"], 200, (offer, c))
                self.assertGreater(c["height"], 80, (offer, c))
            self.assertEqual(mine["hours"]["bars"], 24)
            self.assertEqual(mine["weekdays"]["bars"], 7)
            self.assertEqual(mine["networks"]["bars"], 4)
            self.assertEqual(mine["cost-over-time"]["lines"], 2)
            self.assertEqual(mine["cost-over-time"]["points"], 2 * days)
        # Budgeted offers draw their budget line; the simulated offers
        # include budgets that run out within the week.
        budgeted = {
            f"{i}:{o['id']}"
            for i, s in enumerate(self.report["scenarios"])
            for o in s["offers"]
            if o["budget"] is not None
        }
        drawn = {c["offer"] for c in charts if c["chart"] == "cost-over-time" and c["budget"] == 1}
        self.assertTrue(drawn)
        self.assertLessEqual(drawn, budgeted)
        self.assertTrue(any(o["budget_ran_out_day"] for o in self.report["scenarios"][0]["offers"]))


if __name__ == "__main__":
    unittest.main()
