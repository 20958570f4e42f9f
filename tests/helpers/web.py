"""Mailman's web pages through the test host's web server, failing on any traceback or warning
in the page or in Mailman's and Apache's error logs."""

import re

from helpers.e2e_host import Host, prefix
from helpers.tls import curl_argv
from helpers.upstreams import DOMAIN

PREFIX = prefix(DOMAIN)
LIST_PASSWORD = "listpassword"
LOGS = (f"var/log/mailmen/{DOMAIN}/error", f"var/log/apache2/mailman-{DOMAIN}-error.log")
# What Python prints when something breaks (an exception's last line, "file:1: DeprecationWarning:"), Mailman's
# "we hit a bug" page and its runner failures, and a CGI's stderr in Apache's log (AH01215).
PROBLEM = re.compile(r"Traceback|^[A-Z]\w*(Error|Exception): |: [A-Z]\w*Warning: |Bug in Mailman|hit a bug"
                     r"|Uncaught runner|SHUNTING|AH01215|End of script output|malformed header", re.M)


class Logs:
    """Mailman's error log and Apache's, read from where a check started."""

    def __init__(self, host: Host):
        self.host = host
        self.offsets = {log: self.size(log) for log in LOGS}

    def size(self, log: str) -> int:
        path = self.host.root / log
        return path.stat().st_size if path.exists() else 0

    def new(self) -> str:
        text = ""
        for log, offset in self.offsets.items():
            path = self.host.root / log
            if path.exists():
                with open(path, errors="replace") as fh:
                    fh.seek(offset)
                    text += fh.read()
        return text


def assert_clean(what: str, output: str, logs: Logs) -> None:
    assert not PROBLEM.search(output), f"{what} went wrong:\n{output[-3000:]}"
    logged = logs.new()
    assert not PROBLEM.search(logged), f"{what} logged an error:\n{logged[-3000:]}"


def page(host: Host, jar: str, path: str, data: dict | None = None, status: int = 200) -> str:
    """GET (or, with data, POST) https://DOMAIN/mailman/PATH with a cookie jar of its own."""
    logs = Logs(host)
    argv = [*curl_argv(DOMAIN, f"mailman/{path}"), "-sS", "-w", "\n%{http_code}", "-b", f"/tmp/{jar}.jar", "-c", f"/tmp/{jar}.jar"]
    for key, value in (data or {}).items():
        argv += ["--data-urlencode", f"{key}={value}"]
    body, _, code = host.run(*argv).stdout.rpartition("\n")
    method = "POST" if data else "GET"
    assert code == str(status), f"{method} {path}: HTTP {code}, not {status}:\n{body[-3000:]}"
    assert_clean(f"{method} {path}", body, logs)
    return body


def csrf(body: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def admin_login(host: Host, jar: str, listname: str = "users") -> str:
    return page(host, jar, f"admin/{listname}", {"adminpw": LIST_PASSWORD})


def held(host: Host, listname: str) -> list:
    return sorted((host.root / PREFIX.lstrip("/") / "data").glob(f"heldmsg-{listname}-*.pck"))
