"""Tests of pagecheck.py against small local pages (stdlib unittest).

    python3 -m unittest discover -s tools/browser -p 'test_*.py' -v

Needs /usr/bin/chromium (scripts/ensure-chromium installs it).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGECHECK = HERE / "pagecheck.py"

CLEAN = """<!doctype html><html><head><meta charset="utf-8"><title>clean</title></head>
<body><h1 id="t">hello</h1><svg id="s" width="10" height="10"><rect width="5" height="5"/></svg>
<script>console.log("not an error"); console.warn("nor this");</script></body></html>"""

BROKEN = """<!doctype html><html><head><meta charset="utf-8"><title>broken</title></head>
<body><script>
console.error("boom", 42);
setTimeout(function () { throw new Error("late failure"); }, 10);
</script></body></html>"""


def run(*args: str) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [sys.executable, str(PAGECHECK), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


class PageCheckTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.dir = tempfile.TemporaryDirectory()
        root = Path(cls.dir.name)
        (root / "clean.html").write_text(CLEAN)
        (root / "broken.html").write_text(BROKEN)
        cls.root = root

    @classmethod
    def tearDownClass(cls) -> None:
        cls.dir.cleanup()

    def check(self, args: list[str], expected_rc: int, expected: dict) -> dict:
        """Runs pagecheck and compares the exit code and the listed report fields."""
        rc, report, stderr = run(*args)
        self.assertEqual(rc, expected_rc, stderr)
        self.assertEqual(set(report), {"console_errors", "exceptions", "evals"})
        for key, value in expected.items():
            self.assertEqual(report[key], value, key)
        return report

    def test_clean_page_has_no_errors_and_evaluates_in_order(self) -> None:
        self.check(
            [
                str(self.root / "clean.html"),
                "--eval",
                "document.getElementById('t').textContent",
                "--eval",
                "document.querySelectorAll('svg rect').length",
                "--eval",
                "({nested: [1, 'two', null]})",
            ],
            0,
            {
                "console_errors": [],
                "exceptions": [],
                "evals": ["hello", 1, {"nested": [1, "two", None]}],
            },
        )

    def test_console_error_and_uncaught_exception_are_reported(self) -> None:
        report = self.check([str(self.root / "broken.html"), "--wait-ms", "200"], 0, {"evals": []})
        self.assertEqual(report["console_errors"], ["boom 42"])
        self.assertEqual(len(report["exceptions"]), 1)
        self.assertIn("late failure", report["exceptions"][0])

    def test_failing_eval_is_an_exception_and_null(self) -> None:
        report = self.check(
            [str(self.root / "clean.html"), "--eval", "missingVariable.x", "--eval", "1 + 1"],
            0,
            {"console_errors": [], "evals": [None, 2]},
        )
        self.assertEqual(len(report["exceptions"]), 1)
        self.assertTrue(report["exceptions"][0].startswith("eval #1: ReferenceError"))

    def test_missing_file_exits_1(self) -> None:
        self.check([str(self.root / "absent.html")], 1, {"evals": []})

    def test_screenshot_is_a_png(self) -> None:
        out = self.root / "shot.png"
        self.check([str(self.root / "clean.html"), "--screenshot", str(out), "--width", "400", "--height", "300"], 0, {})
        data = out.read_bytes()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        # The PNG header's IHDR holds the width and height.
        self.assertEqual(int.from_bytes(data[16:20], "big"), 400)
        self.assertEqual(int.from_bytes(data[20:24], "big"), 300)

    def test_http_page_and_http_error(self) -> None:
        handler = lambda *a, **k: _QuietHandler(*a, directory=str(self.root), **k)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            self.check([f"{base}/clean.html", "--eval", "document.title"], 0, {"console_errors": [], "evals": ["clean"]})
            self.check([f"{base}/absent.html"], 1, {"evals": []})
        finally:
            server.shutdown()
            server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


if __name__ == "__main__":
    unittest.main()
