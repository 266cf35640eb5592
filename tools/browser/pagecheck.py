#!/usr/bin/env python3
"""Open a page in headless Chromium and report what a person would see go wrong.

    python3 tools/browser/pagecheck.py URL [--wait-ms N] [--screenshot OUT.png]
                                           [--eval JS]... [--width W] [--height H]
                                           [--full-page] [--timeout-s S]

Prints one JSON object on stdout:

    {"console_errors": [...], "exceptions": [...], "evals": [...]}

- console_errors: console.error()/console.assert() calls and browser log
  entries of level "error" (failed resource loads, CSP violations, ...),
  except the browser's own request for /favicon.ico.
- exceptions: uncaught exceptions and unhandled rejections in the page, plus
  any --eval expression that threw (prefixed "eval #N: ").
- evals: the JSON value of each --eval expression, in order (null when it
  threw or returned something that is not JSON, such as a DOM node).

Exits 0 when the page loaded (the navigation succeeded and the main document
did not answer with an HTTP error), 1 otherwise (with the reason on stderr).
URL may be a local path, taken as a file:// URL.

Python 3 standard library only: it starts Debian's /usr/bin/chromium (see
scripts/ensure-chromium) and speaks the DevTools protocol over a websocket
client of its own, so that checks run on a fresh machine without pip.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

CHROMIUM = os.environ.get("CARDLINK_CHROMIUM", "/usr/bin/chromium")


class PageCheckError(Exception):
    """The page could not be checked: the browser failed or the page did not load."""


class WebSocket:
    """A minimal RFC 6455 client: text frames out (masked), any frames in."""

    def __init__(self, url: str, timeout: float):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "ws":
            raise PageCheckError(f"unsupported websocket URL {url!r}")
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parsed.path or "/"
        request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise PageCheckError("DevTools closed the websocket during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise PageCheckError(f"websocket handshake refused: {status.decode(errors='replace')}")

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise PageCheckError("DevTools closed the websocket")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header.append(0x80 | 126)
            header += struct.pack("!H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", n)
        mask = os.urandom(4)
        header += mask
        # Client frames must be masked (RFC 6455 5.3); XOR over an int is the
        # fast way to do it in pure Python.
        key = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.sock.sendall(bytes(header) + masked)

    def send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv_text(self, timeout: float) -> str | None:
        """The next text message, or None when nothing arrived within timeout."""
        self.sock.settimeout(timeout)
        message = b""
        try:
            while True:
                b0, b1 = self._read_exact(2)
                # Once a frame has started, read it whole whatever the timeout.
                self.sock.settimeout(30)
                fin, opcode = b0 & 0x80, b0 & 0x0F
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", self._read_exact(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", self._read_exact(8))
                mask = self._read_exact(4) if b1 & 0x80 else None
                payload = self._read_exact(n)
                if mask:
                    key = (mask * (n // 4 + 1))[:n]
                    payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
                if opcode == 0x8:
                    raise PageCheckError("DevTools closed the websocket")
                if opcode == 0x9:
                    self._send_frame(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                message += payload
                if fin:
                    return message.decode()
        except socket.timeout:
            if message:
                raise PageCheckError("timed out inside a websocket message")
            return None

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class DevTools:
    """One flattened DevTools session on a page target, collecting what goes wrong."""

    def __init__(self, ws: WebSocket, deadline: float):
        self.ws = ws
        self.deadline = deadline
        self.next_id = 0
        self.session: str | None = None
        self.console_errors: list[str] = []
        self.exceptions: list[str] = []
        self.loaded = False
        self.main_frame: str | None = None
        self.main_status: int | None = None

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise PageCheckError("timed out")
        return left

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        msg: dict = {"id": msg_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.ws.send_text(json.dumps(msg))
        while True:
            raw = self.ws.recv_text(self._remaining())
            if raw is None:
                continue
            reply = json.loads(raw)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise PageCheckError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._event(reply)

    def pump(self, seconds: float, until=None) -> None:
        """Handles events for up to `seconds`, or until `until()` holds."""
        end = min(time.monotonic() + seconds, self.deadline)
        while True:
            if until is not None and until():
                return
            left = end - time.monotonic()
            if left <= 0:
                return
            raw = self.ws.recv_text(left)
            if raw is not None:
                self._event(json.loads(raw))

    def _event(self, msg: dict) -> None:
        method = msg.get("method")
        params = msg.get("params", {})
        if self.session and msg.get("sessionId") not in (None, self.session):
            return
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(_describe(arg) for arg in params.get("args", []))
            self.console_errors.append(text or params.get("type"))
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(_exception_text(params.get("exceptionDetails", {})))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            # The browser asks for /favicon.ico on its own; a page without one
            # has no error a person would see.
            if entry.get("level") == "error" and not entry.get("url", "").endswith("/favicon.ico"):
                text = entry.get("text", "")
                if entry.get("url"):
                    text += f" ({entry['url']})"
                self.console_errors.append(text)
        elif method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Network.responseReceived":
            if params.get("type") == "Document" and params.get("frameId") == self.main_frame:
                self.main_status = params.get("response", {}).get("status")


def _describe(obj: dict) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return obj.get("description") or obj.get("unserializableValue") or obj.get("type", "")


def _exception_text(details: dict) -> str:
    exc = details.get("exception") or {}
    text = exc.get("description") or exc.get("value") or details.get("text", "exception")
    if not isinstance(text, str):
        text = json.dumps(text)
    url = details.get("url")
    if url:
        text += f" ({url}:{details.get('lineNumber', 0) + 1})"
    return text


def _to_url(target: str) -> str:
    if "://" in target or target.startswith(("about:", "data:")):
        return target
    return Path(target).resolve().as_uri()


def _wait_for_port(profile: Path, proc: subprocess.Popen, log: Path, deadline: float) -> str:
    """The browser's DevTools websocket URL, from the DevToolsActivePort file."""
    active = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise PageCheckError(f"chromium exited with {proc.returncode}: {tail}")
        if active.exists():
            lines = active.read_text().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        # Older builds only print the URL on stderr.
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("DevTools listening on ws://"):
                return line.split(" on ", 1)[1].strip()
        time.sleep(0.05)
    raise PageCheckError("chromium did not open its DevTools port in time")


def check(args: argparse.Namespace) -> tuple[dict, str | None]:
    """Runs the check; returns the report and the reason the page failed (None if it loaded)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise PageCheckError(f"{CHROMIUM} not found: run scripts/ensure-chromium")
    deadline = time.monotonic() + args.timeout_s
    profile = Path(tempfile.mkdtemp(prefix="pagecheck-"))
    log = profile / "chromium.log"
    proc = None
    ws = None
    try:
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [
                    CHROMIUM,
                    "--headless=new",
                    "--remote-debugging-port=0",
                    f"--user-data-dir={profile}",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--mute-audio",
                    f"--window-size={args.width},{args.height}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        ws = WebSocket(_wait_for_port(profile, proc, log, deadline), timeout=args.timeout_s)
        dt = DevTools(ws, deadline)
        target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        dt.session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.call(f"{domain}.enable")
        dt.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": args.width, "height": args.height, "deviceScaleFactor": 1, "mobile": False},
        )
        dt.main_frame = dt.call("Page.getFrameTree")["frameTree"]["frame"]["id"]
        nav = dt.call("Page.navigate", {"url": _to_url(args.url)})
        failure = None
        if nav.get("errorText"):
            failure = f"navigation failed: {nav['errorText']}"
        else:
            dt.pump(max(0.0, deadline - time.monotonic()), until=lambda: dt.loaded)
            if not dt.loaded:
                failure = "the page did not finish loading in time"
            elif dt.main_status is not None and dt.main_status >= 400:
                failure = f"the page answered HTTP {dt.main_status}"
        evals: list = []
        if failure is None:
            dt.pump(args.wait_ms / 1000.0)
            for i, expr in enumerate(args.eval, 1):
                res = dt.call(
                    "Runtime.evaluate",
                    {"expression": expr, "returnByValue": True, "awaitPromise": True},
                )
                if "exceptionDetails" in res:
                    dt.exceptions.append(f"eval #{i}: {_exception_text(res['exceptionDetails'])}")
                    evals.append(None)
                else:
                    evals.append(res.get("result", {}).get("value"))
            if args.screenshot:
                params: dict = {"format": "png"}
                if args.full_page:
                    size = dt.call("Page.getLayoutMetrics")["cssContentSize"]
                    params["captureBeyondViewport"] = True
                    params["clip"] = {
                        "x": 0,
                        "y": 0,
                        "width": size["width"],
                        "height": size["height"],
                        "scale": 1,
                    }
                shot = dt.call("Page.captureScreenshot", params)
                Path(args.screenshot).write_bytes(base64.b64decode(shot["data"]))
            # Late messages (a console.error fired by an eval) arrive here.
            dt.pump(0.05)
        report = {"console_errors": dt.console_errors, "exceptions": dt.exceptions, "evals": evals}
        try:
            dt.call("Browser.close", session=False)
        except PageCheckError:
            pass
        return report, failure
    finally:
        if ws is not None:
            ws.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="URL or local file path")
    parser.add_argument("--wait-ms", type=int, default=300, help="time to let the page settle after load")
    parser.add_argument("--screenshot", metavar="OUT.png", help="save a PNG of the viewport")
    parser.add_argument("--eval", action="append", default=[], metavar="JS", help="expression to evaluate (repeatable)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="screenshot the whole page, not the viewport")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="give up after this long")
    args = parser.parse_args(argv)
    try:
        report, failure = check(args)
    except PageCheckError as err:
        print(json.dumps({"console_errors": [], "exceptions": [], "evals": []}))
        print(f"pagecheck: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    if failure:
        print(f"pagecheck: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
