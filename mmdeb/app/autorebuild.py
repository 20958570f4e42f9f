"""`mmdeb autorebuild`'s report, its mail, and the lock that keeps to one run at a time; the run
itself (mmdeb-autorebuild.timer, or cron where systemd does not run) is Host.autorebuild.
"""

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from mmdeb.errors import MmdebError
from mmdeb.run import Runner

SENDMAIL = "/usr/sbin/sendmail"


@dataclass
class Report:
    policy: str
    lines: list[str] = field(default_factory=list)
    failures: list[MmdebError] = field(default_factory=list)
    eventful: bool = False  # anything to tell the admin: a release, a rebuild or a failure

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.eventful = True

    def fail(self, error: MmdebError) -> None:
        self.failures.append(error)
        self.add(f"FAILED: {error}")

    def error(self, mail_to: str) -> MmdebError:
        """The run's failure as one line: the first failure, its fix, and where the report went."""
        first = self.failures[0]
        mailed = f"the whole report is mailed to {mail_to}"
        remedy = f"{first.remedy}; {mailed}" if first.remedy else f"read the report mailed to {mail_to}"
        return MmdebError(f"autorebuild failed: {first.message}", remedy)

    def subject(self, host: str) -> str:
        outcome = "FAILED" if self.failures else "report" if self.policy == "report" else "done"
        return f"mmdeb autorebuild on {host}: {outcome}"

    def text(self) -> str:
        return "\n".join([f"mmdeb autorebuild (policy {self.policy})", "", *self.lines]) + "\n"


def sendmail_argv() -> list[str]:
    # -t: the recipients come from the message's To:; -oi: a line of one dot does not end it.
    return [SENDMAIL, "-t", "-oi"]


def mail(report: Report, to: str, host: str) -> str:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = report.subject(host)
    message["Date"] = formatdate(localtime=True)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(report.text())
    return message.as_string()


@contextmanager
def single_run(state: Path):
    """Refuse a second autorebuild while one runs (beside the state file), instead of queueing it behind the first."""
    state.parent.mkdir(parents=True, exist_ok=True)
    with open(state.with_name(".autorebuild.lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise MmdebError(f"another mmdeb autorebuild is running (pid {lock.read().strip() or '?'})",
                             "let it finish; this run did nothing")
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def restore(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_name(f".{path.name}.restore")
        tmp.write_bytes(content)
        os.replace(tmp, path)


def deliver(report: Report, reports: Path, to: str, host: str, runner: Runner) -> Path:
    """Keep the report in reports and mail it; the file stays if the mail cannot go."""
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / time.strftime("%Y%m%dT%H%M%SZ.txt", time.gmtime())
    path.write_text(report.text())
    if not os.access(SENDMAIL, os.X_OK):
        raise MmdebError(f"cannot mail the autorebuild report to {to}: {SENDMAIL} is missing",
                         f"install a mail transport (apt install postfix, or exim4); the report is in {path}")
    runner.run(sendmail_argv(), stdin=mail(report, to, host), what=f"mailing the report to {to} (kept in {path})")
    return path
