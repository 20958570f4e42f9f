"""What one domain package is made of: domain, upstream, distribution and settings."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from mmdeb import __version__
from mmdeb.domains.domain import Domain
from mmdeb.domains.layout import (ALWAYS_ON_UNIT, COMMON_PACKAGE, DRAIN_UNIT, JOB_UNIT_PREFIX, JOBS_UNIT,
                                  QUEUE_UNIT, UNIT_NAME_MAX, instance_unit)
from mmdeb.domains.settings import DomainSettings
from mmdeb.domains.state import ChangelogEntry
from mmdeb.errors import MmdebError
from mmdeb.upstream.dists import DIST_RELEASES, Flavour
from mmdeb.upstream.tarball import Upstream

# A domain package's Depends in every flavour: ps (the units), the web server's default
# certificate (ssl-cert's snakeoil pair) and ucf (the certificate's configuration).
DOMAIN_DEPENDS = ("procps", "publicsuffix", "ssl-cert", "ucf")  # publicsuffix: layout.PUBLIC_SUFFIX_LIST
# mailmen-common's Depends besides Python's: mailmen-dkim's tools, and a DKIM signer for either MTA.
COMMON_DEPENDS = ("openssl", "python3-dnspython", "opendkim | exim4-daemon-light | exim4-daemon-heavy")
MAILMAN_USER = MAILMAN_GROUP = "list"  # Mailman's user and group, as Debian's own mailman package had


@dataclass(frozen=True)
class Job:
    """One of Mailman's periodic scripts (cron/<name>), run for every installed domain by
    mailmen-common: by cron, or where systemd runs by the timer mailmen-<name>.timer. One
    schedule for both."""

    name: str
    hour: int
    minute: int
    day: int | None = None  # of the month; None: every day

    @property
    def cron(self) -> str:
        return f"{self.minute} {self.hour} {self.day or '*'} * *"

    @property
    def on_calendar(self) -> str:
        day = f"{self.day:02d}" if self.day else "*"
        return f"*-*-{day} {self.hour:02d}:{self.minute:02d}:00"


# Upstream's cron/crontab.in.in schedule, without gate_news (mmdeb sets up no news gateway).
JOBS = (
    Job("checkdbs", 8, 0),
    Job("disabled", 9, 0),
    Job("senddigests", 12, 0),
    Job("mailpasswds", 5, 0, day=1),
    Job("nightly_gzip", 3, 27),
    Job("cull_bad_shunt", 4, 30),
)


class SourceNames:
    """The version and file names of a source package, from package, upstream, revision and dist."""

    package: str
    upstream: Upstream
    revision: int
    dist: str

    @property
    def flavour(self) -> Flavour:
        return self.upstream.flavour

    @property
    def version(self) -> str:
        # The +debNN suffix keeps the same upstream's builds for different suites apart in one pool.
        return f"{self.upstream.version}-{self.revision}+deb{DIST_RELEASES[self.dist]}"

    @property
    def maintainer(self) -> str:
        name = os.environ.get("DEBFULLNAME", "mmdeb")
        email = os.environ.get("DEBEMAIL", f"postmaster@{self.mail_domain}")
        return f"{name} <{email}>"

    def orig_name(self, component: str | None = None) -> str:
        if component:
            return f"{self.package}_{self.upstream.version}.orig-{component}.tar.xz"
        return f"{self.package}_{self.upstream.version}.orig.tar.{self.upstream.compression}"

    @property
    def tree_name(self) -> str:
        return f"{self.package}-{self.upstream.version}"

    @property
    def dsc_name(self) -> str:
        return f"{self.package}_{self.version}.dsc"

    def log_name(self, arch: str) -> str:
        return f"{self.package}_{self.version}_{arch}.build"

    @property
    def source_format(self) -> str:
        return "3.0 (quilt)"

    @property
    def components(self):
        """The upstream's components this source package carries (orig-NAME tarballs)."""
        return self.upstream.components

    @property
    def configure_options(self) -> tuple[str, ...]:
        """Mailman's configure options; a domain's also name its gids and host."""
        domain = (f"--with-mail-gid={self.mail_gid}", f"--with-cgi-gid={self.cgi_gid}",
                  f"--with-mailhost={self.domain.name}", f"--with-urlhost={self.domain.name}") if self.kind == "domain" else ()
        return (f"--prefix={self.prefix}", f"--with-python={self.flavour.python}", f"--with-username={MAILMAN_USER}",
                f"--with-groupname={MAILMAN_GROUP}", *domain, "--without-permcheck")

    def check_common(self) -> None:
        if self.dist not in DIST_RELEASES:
            raise MmdebError(f"unknown distribution {self.dist!r}", f"use one of {', '.join(DIST_RELEASES)}")
        self.flavour.check_dist(self.dist)
        if self.revision < 1:
            raise MmdebError(f"revision {self.revision} is not a positive number", "give --revision 1 or higher")
        if self.changelog and self.changelog[0].version != self.version:
            raise MmdebError(f"the newest changelog entry is {self.changelog[0].version}, not {self.version}", "report this as a bug in mmdeb")


@dataclass(frozen=True)
class CoreSpec(SourceNames):
    """Shared-core mode: the one package per flavour and dist that holds Mailman's code."""

    upstream: Upstream
    dist: str
    patches_dir: Path
    revision: int = 1
    changelog: tuple[ChangelogEntry, ...] = ()
    mail_domain: str = field(kw_only=True)  # for the Maintainer address: one of the domains it serves
    kind = "core"

    def __post_init__(self):
        self.check_common()

    @property
    def package(self) -> str:
        return self.flavour.core_package

    @property
    def prefix(self) -> str:
        return self.flavour.core_prefix


class NativeNames:
    """The maintainer and file names of a native package of mmdeb's own (mmdeb, mailmen-common)."""

    package: str
    version: str

    @property
    def maintainer(self) -> str:
        name = os.environ.get("DEBFULLNAME", "mmdeb")
        email = os.environ.get("DEBEMAIL", "mmdeb@example.org")
        return f"{name} <{email}>"

    @property
    def tree_name(self) -> str:
        return f"{self.package}-{self.version}"

    @property
    def dsc_name(self) -> str:
        return f"{self.package}_{self.version}.dsc"

    def log_name(self, arch: str) -> str:
        return f"{self.package}_{self.version}_{arch}.build"


@dataclass(frozen=True)
class CommonSpec(NativeNames):
    """mailmen-common: what every domain package depends on, once per host and dist. Made of
    mmdeb's own files only (a native package), so its version is mmdeb's with a revision."""

    dist: str
    revision: int = 1
    changelog: tuple[ChangelogEntry, ...] = ()
    kind = "common"
    package = COMMON_PACKAGE

    def __post_init__(self):
        if self.dist not in DIST_RELEASES:
            raise MmdebError(f"unknown distribution {self.dist!r}", f"use one of {', '.join(DIST_RELEASES)}")

    @property
    def version(self) -> str:
        return common_version(__version__, self.revision, self.dist)

    @property
    def jobs(self) -> tuple[Job, ...]:
        return JOBS

    def job_unit(self, job: Job) -> str:
        """The name of the job's timer, and of its template service (with an @)."""
        return job_template(job).split("@")[0]

    def jobs_instance(self, job: Job) -> str:
        """What the job's timer starts: mailmen-jobs, which starts the job for each domain."""
        return JOBS_UNIT.replace("@", f"@{job.name}")


def common_version(mmdeb_version: str, revision: int, dist: str) -> str:
    """'0.2.0', 3, 'trixie' -> '0.2.0+3+deb13': native, so without a Debian revision of its own."""
    return f"{mmdeb_version}+{revision}+deb{DIST_RELEASES[dist]}"


def split_common_version(version: str) -> tuple[str, int]:
    """'0.2.0+3+deb13' -> ('0.2.0', 3)."""
    mmdeb_version, revision, _ = version.rsplit("+", 2)
    return mmdeb_version, int(revision)


@dataclass(frozen=True)
class PackageSpec(SourceNames):
    domain: Domain
    upstream: Upstream
    settings: DomainSettings
    patches_dir: Path  # holds <flavour>/series
    revision: int = 1
    changelog: tuple[ChangelogEntry, ...] = ()  # newest first, starting with this version
    kind = "domain"

    def __post_init__(self):
        self.check_common()
        self.check_unit_names()

    @property
    def dist(self) -> str:
        return self.settings.dist

    @property
    def mail_gid(self) -> str:
        return self.settings.mail_gid

    @property
    def cgi_gid(self) -> str:
        return self.settings.cgi_gid

    @property
    def package(self) -> str:
        return self.domain.package

    @property
    def depends(self) -> tuple[str, ...]:
        return domain_depends(self.flavour, self.dist)

    @property
    def mail_domain(self) -> str:
        return self.domain.name

    @property
    def prefix(self) -> str:
        return self.domain.prefix

    @property
    def shared(self) -> bool:
        return self.settings.mode == "shared"

    @property
    def thin(self) -> bool:
        """A shared-mode domain's package: native, of the few files its binaries are built from
        (thin.py), with no configure run."""
        return self.shared

    @property
    def source_format(self) -> str:
        # 1.0: the one native format that takes a Debian revision, so the version stays <upstream>-<revision>+debNN.
        return "1.0" if self.thin else "3.0 (quilt)"

    @property
    def components(self):
        # configure needs dnspython; a thin package runs no configure, and its pythonlib is the core's.
        return () if self.thin else self.upstream.components

    @property
    def owner(self) -> str:
        return self.settings.site_list_owner or f"postmaster@{self.domain.name}"

    @property
    def jobs(self) -> tuple[Job, ...]:
        return JOBS

    @property
    def on_demand(self) -> bool:
        return self.settings.runners == "on-demand"

    @property
    def runner_unit(self) -> str:
        """The instance postinst enables and starts: the path unit (which starts the drain service
        when mail comes: a start would wait for the run), or mailmanctl's service."""
        return self.instance_of(QUEUE_UNIT if self.on_demand else ALWAYS_ON_UNIT)

    @property
    def stopped_units(self) -> tuple[str, ...]:
        """What prerm stops: the runners, and a drain going on (bookworm's systemd does not stop it
        with its path unit)."""
        return (self.runner_unit, self.instance_of(DRAIN_UNIT)) if self.on_demand else (self.runner_unit,)

    @property
    def retired_runner_unit(self) -> str:
        """What the other runners setting enables, for a switch from it."""
        return self.instance_of(ALWAYS_ON_UNIT if self.on_demand else QUEUE_UNIT)

    @property
    def legacy_units(self) -> tuple[str, ...]:
        """The unit files of each domain's own, which packages made before mailmen-common's
        templates shipped: their enablement goes on upgrade."""
        return (f"{self.package}.service", f"{self.package}.path", f"{self.package}.timer",
                *(f"{self.package}-{job.name}.{suffix}" for job in self.jobs for suffix in ("timer", "service")))

    def instance_of(self, template: str) -> str:
        return instance_unit(template, self.domain.name)

    def check_unit_names(self) -> None:
        """Every instance name of this domain fits systemd's limit."""
        templates = (ALWAYS_ON_UNIT, DRAIN_UNIT, QUEUE_UNIT, *(job_template(job) for job in self.jobs))
        longest = max((self.instance_of(template) for template in templates), key=len)
        if len(longest) > UNIT_NAME_MAX:
            raise MmdebError(f"{self.domain.name} would name a systemd unit of {len(longest)} characters "
                             f"({longest[:40]}...), over systemd's limit of {UNIT_NAME_MAX}",
                             "host the lists under a shorter domain name")


def job_template(job: Job) -> str:
    """The template service that runs job for one domain (instance)."""
    return f"{JOB_UNIT_PREFIX}{job.name}@.service"


def domain_depends(flavour: Flavour, dist: str) -> tuple[str, ...]:
    """What a domain package of flavour needs installed on dist, besides shared libraries."""
    return DOMAIN_DEPENDS + flavour.depends_for(dist)
