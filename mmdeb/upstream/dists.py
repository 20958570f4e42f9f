"""Distribution policy: the flavours of Mailman, the Debian releases each runs on and what it
depends on there, and what each release's build chroot needs."""

from dataclasses import dataclass, field

from mmdeb.errors import MmdebError

# Debian release numbers, for the +debNN version suffix.
DIST_RELEASES = {"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}


@dataclass(frozen=True)
class Flavour:
    name: str
    summary: str
    dists: tuple[str, ...]
    python: str  # the interpreter compiled into the setgid wrappers
    build_depends: tuple[str, ...]
    depends: tuple[str, ...]
    depends_by_dist: dict[str, tuple[str, ...]] = field(default_factory=dict)
    components: tuple[str, ...] = ()

    @property
    def python_command(self) -> str:
        return self.python.rsplit("/", 1)[-1]

    @property
    def core_package(self) -> str:
        return f"mailmen-core-{self.name}"

    @property
    def core_prefix(self) -> str:
        return f"/usr/lib/mailmen/{self.name}"

    def depends_for(self, dist: str) -> tuple[str, ...]:
        return self.depends + self.depends_by_dist.get(dist, ())

    def check_dist(self, dist: str) -> None:
        if dist not in self.dists:
            raise MmdebError(
                f"the {self.name} flavour ({self.summary}) cannot run on {dist}",
                f"use --dist {' or --dist '.join(self.dists)}",
            )


FLAVOURS = {
    "py3": Flavour(
        name="py3",
        summary="the Python 3 fork, mailman2-python3 2.2.x",
        dists=("trixie", "bookworm", "forky"),  # the first is the default; forky is testing
        python="/usr/bin/python3",
        build_depends=("python3-dev", "python3-dnspython"),
        depends=("python3", "python3-dnspython", "python3-html2text"),
        # Python 3.13 dropped modules Mailman imports: cgi (the CGI scripts) and
        # nntplib (the mail-news gateway: gate_news and the news runner).
        depends_by_dist={dist: ("python3-legacy-cgi", "python3-standard-nntplib") for dist in ("trixie", "forky")},
    ),
    "gnu": Flavour(
        name="gnu",
        summary="GNU Mailman 2.1 on Python 2",
        dists=("bullseye",),
        python="/usr/bin/python2.7",
        build_depends=("python2.7-dev",),
        depends=("python2.7", "python3"),  # python3: mmdeb-import, which drives 2.1 through its scripts
        # configure refuses to run without dnspython < 2, which bullseye lacks for Python 2.
        components=("dnspython",),
    ),
}


def flavour_for_version(version: str) -> Flavour:
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    return FLAVOURS["py3"] if major_minor >= (2, 2) else FLAVOURS["gnu"]
