"""Headless Chromium, driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
the standard library is enough, and the browser is Debian's own chromium package."""

import base64
import json
import os
import subprocess
import time
from pathlib import Path


class BrowserError(AssertionError):
    pass


class Browser:
    """One page in a headless Chromium that runs in a network namespace and trusts the
    certificates in HOME/.pki/nssdb (and nothing is ignored: a certificate error fails)."""

    def __init__(self, chromium: str, netns: str, home: Path, resolver_rules: str):
        self.commands, self.replies = os.pipe(), os.pipe()  # ours to its fd 3; its fd 4 to ours
        self.log = home / "chromium.log"
        self.log_file = self.log.open("wb")
        argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--remote-debugging-pipe", f"--user-data-dir={home}/chromium", f"--host-resolver-rules={resolver_rules}",
                # Else it tries https:// first for an http:// address, by itself.
                "--disable-features=HttpsUpgrades", "--window-size=1000,800", "about:blank"]
        self.process = subprocess.Popen(
            # bash: dash's redirections take one-digit descriptors only.
            ["ip", "netns", "exec", netns, "bash", "-c", f'exec "$@" 3<&{self.commands[0]} 4>&{self.replies[1]}', "bash", *argv],
            pass_fds=(self.commands[0], self.replies[1]), env={**os.environ, "HOME": str(home)},
            stdout=subprocess.DEVNULL, stderr=self.log_file)
        os.close(self.commands[0])
        os.close(self.replies[1])
        self.buffer = b""
        self.events: list[dict] = []
        self.next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log_file.close()
        os.close(self.commands[1])
        os.close(self.replies[0])

    # -- the protocol ----------------------------------------------------------------

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self.replies[0], 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium exited: {self.log.read_text(errors='replace')[-2000:]}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands[1], json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def page(self, method: str, params: dict | None = None) -> dict:
        return self.call(method, params, self.session)

    def wait_for_load(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == "Page.loadEventFired":
                    del self.events[:index + 1]
                    return
            if time.monotonic() > deadline:
                raise BrowserError("the page did not finish loading")
            self.events.append(self._receive(deadline - time.monotonic()))

    # -- what a user does --------------------------------------------------------------

    def open(self, url: str) -> None:
        self.events.clear()
        navigated = self.page("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise BrowserError(f"{url}: {navigated['errorText']}")
        self.wait_for_load()

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    @property
    def url(self) -> str:
        return self.evaluate("location.href")

    @property
    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def fill(self, fields: dict[str, str]) -> None:
        for name, value in fields.items():
            found = self.evaluate(f"(() => {{ const field = document.querySelector({json.dumps(f'[name={json.dumps(name)}]')});"
                                  f" if (!field) return false; field.value = {json.dumps(value)}; return true; }})()")
            if not found:
                raise BrowserError(f"{self.url} has no field {name}")

    def choose(self, selector: str) -> None:
        """Click what selector names, on this page (a radio button or a check box)."""
        if not self.evaluate(f"(() => {{ const element = document.querySelector({json.dumps(selector)});"
                             " if (!element) return false; element.click(); return true; })()"):
            raise BrowserError(f"{self.url} has nothing matching {selector}")

    def click(self, selector: str) -> None:
        """Click what selector names, and wait for the page it leads to."""
        self.events.clear()
        self.choose(selector)
        self.wait_for_load()

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.page("Page.captureScreenshot", {"format": "png"})["data"]))
