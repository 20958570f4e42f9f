"""`mmdeb autorebuild`: the scheduled security rebuild, run by mmdeb-autorebuild.timer (or
cron where systemd does not run).

One run looks for new releases of the catalogue upstreams the domains use and for changed
patches and templates. Then, as far as mmdeb.conf's autorebuild.policy allows, it records
the releases in the local catalogue, updates the build chroots, rebuilds what changed,
publishes the builds that succeeded, and mails the admin what it did. A run that fails
leaves the state file, the local catalogue and the repository as they were; a build that
fails is not published, the others are.
"""

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from mmdeb.upstream import tracking
from mmdeb.build.builders.chroot import ChrootCache
from mmdeb.upstream.catalogue import load_catalogue
from mmdeb.errors import MmdebError
from mmdeb.build.pipeline import build_each, built_files, host_arch
from mmdeb.app.places import Places
from mmdeb.plan.rebuild import Rebuild, plan_all
from mmdeb.publish.repo import Repository
from mmdeb.run import Runner
from mmdeb.app.conf import Settings
from mmdeb.domains.state import State, locked

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
def single_run(where: Places):
    """Refuse a second autorebuild while one runs, instead of queueing it behind the first."""
    where.state.parent.mkdir(parents=True, exist_ok=True)
    with open(where.state.with_name(".autorebuild.lock"), "a+") as lock:
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


def watched_upstreams(state: State) -> list[str]:
    names = load_catalogue().get("upstream", {})
    return sorted({domain.upstream for domain in state.domains.values() if domain.upstream in names})


def look_for_releases(state: State, report: Report, runner: Runner) -> None:
    catalogue = load_catalogue()["upstream"]
    for name in watched_upstreams(state):
        if report.policy == "report":
            release = tracking.newest_release(name, catalogue[name])
            if release:
                report.add(f"new upstream release: {name} {catalogue[name]['version']} -> {release.version} "
                           f"({release.url}); not downloaded (policy report)")
        elif recorded := tracking.update(name, runner):
            report.add(f"new upstream release: {name} {recorded.old_version} -> {recorded.version} "
                       f"({recorded.url}), sha256 {recorded.sha256}, verified by {recorded.verified_by}")


def build_and_publish(rebuilds: list[Rebuild], where: Places, settings: Settings, report: Report,
                      runner: Runner) -> list[Rebuild]:
    """Build every rebuild, then publish the ones that built; return those that did."""
    arch = host_arch(runner)
    if settings.builder != "local":
        chroots = ChrootCache.configured(where.cache)
        for dist in dict.fromkeys(item.spec.dist for item in rebuilds):
            chroots.update(dist, arch, runner)
            report.add(f"updated the {dist}/{arch} build chroot")
    outcomes = build_each([item.spec for item in rebuilds], settings.builder, where.out, settings.build_jobs, runner)
    built = []
    for item, (spec, outcome) in zip(rebuilds, outcomes):
        log = where.out.resolve() / spec.dist / spec.log_name(arch)
        if isinstance(outcome, MmdebError):
            # outcome names the log when a command failed; other failures say why themselves.
            report.fail(MmdebError(f"{spec.package} {spec.version} for {spec.dist} did not build ({outcome.message})",
                                   outcome.remedy))
        else:
            report.add(f"built {spec.package} {spec.version} for {spec.dist}; log: {log}")
            built.append(item)
    if built and settings.policy == "build+publish":
        files: dict[str, list[Path]] = {}
        for item in built:
            files.setdefault(item.spec.dist, []).extend(built_files(where.out.resolve(), item.spec.package, item.spec.dist,
                                                                  item.spec.version, arch))
        Repository(where.repo, runner).publish(files)
        for item in built:
            report.add(f"published {item.spec.package} {item.spec.version} to {item.spec.dist} in {where.repo}")
    return built


def autorebuild(where: Places, settings: Settings, runner: Runner) -> Report:
    report = Report(settings.policy)
    with single_run(where), locked(where.state) as state:
        catalogue_before = where.catalogue.read_bytes() if where.catalogue.exists() else None
        built: list[Rebuild] = []
        try:
            if not state.domains:
                report.lines.append(f"nothing to do: {where.state} records no domain")
                return report
            look_for_releases(state, report, runner)
            rebuilds = plan_all(state, sorted(state.domains), settings.urgency, settings.patches_dir)
            if not rebuilds:
                report.lines.append("nothing to rebuild: every package is up to date")
            elif settings.policy == "report":
                for item in rebuilds:
                    report.add(f"would rebuild {item.spec.package} as {item.spec.version}: {'; '.join(item.reasons)}")
            else:
                built = build_and_publish(rebuilds, where, settings, report, runner)
        except MmdebError as exc:
            report.fail(exc)
        if report.failures and not built:
            restore(where.catalogue, catalogue_before)
        elif built:
            for item in built:
                item.record_build()
                if settings.policy == "build+publish":
                    item.record.published = item.record.built
            state.save()
    return report


def restore(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_name(f".{path.name}.restore")
        tmp.write_bytes(content)
        os.replace(tmp, path)


def deliver(report: Report, where: Places, to: str, runner: Runner) -> Path:
    """Keep the report in where.reports and mail it; the file stays if the mail cannot go."""
    where.reports.mkdir(parents=True, exist_ok=True)
    path = where.reports / time.strftime("%Y%m%dT%H%M%SZ.txt", time.gmtime())
    path.write_text(report.text())
    if not os.access(SENDMAIL, os.X_OK):
        raise MmdebError(f"cannot mail the autorebuild report to {to}: {SENDMAIL} is missing",
                         f"install a mail transport (apt install postfix, or exim4); the report is in {path}")
    runner.run(sendmail_argv(), stdin=mail(report, to, socket.getfqdn()), what=f"mailing the report to {to} (kept in {path})")
    return path
