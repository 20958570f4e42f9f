"""Distribution policy: the flavours of Mailman, the Debian releases each runs on and what it
depends on there, and what each release's build chroot needs."""

from dataclasses import dataclass, field

from mmdeb.domains.domain import core_package
from mmdeb.errors import MmdebError

# Debian release numbers, for the +debNN version suffix.
DIST_RELEASES = {"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}


def python_addon(python: str) -> str:
    """dh-python's debhelper addon for the interpreter at path python: python2 or python3."""
    return python.rsplit("/", 1)[-1].split(".")[0]


# What each addon's dependencies (the interpreter its py*compile runs) are substituted for in debian/control.
PYTHON_SUBSTVARS = {"python2": "${python:Depends}", "python3": "${python3:Depends}"}


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
    def python_addon(self) -> str:
        """dh-python's debhelper addon for the python: python2 (dh_python2) or python3 (dh_python3)."""
        return python_addon(self.python)

    @property
    def core_package(self) -> str:
        return core_package(self.name)

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


# mmdeb's own package (mmdeb self-build): mmdeb needs Python 3.11 and python3-sh 2 (bookworm has
# 1.14), and its man page trixie's argparse-manpage 4 (bookworm's 1.2 knows no subcommands).
SELF_DISTS = ("trixie", "forky")
# Its Build-Depends besides debhelper-compat: pybuild, and what generating the man page and the
# bash completion needs (argparse-manpage, shtab, and every module mmdeb.cli imports).
SELF_BUILD_DEPENDS = (
    "dh-python", "pybuild-plugin-pyproject", "python3-all", "python3-setuptools",
    "python3-argparse-manpage", "python3-shtab",
    "python3-debian", "python3-jinja2", "python3-sh", "python3-tomli-w",
)


def chroot_packages(dist: str) -> list[str]:
    """What a build chroot of dist holds besides the buildd variant: the build dependencies of
    every flavour that runs on dist (and of mmdeb itself), so warm builds download nothing."""
    # dh-python: the dh-sequence-python2/3 that Mailman's packages build with (render.python_addons).
    packages = {"debhelper", "dh-python", "fakeroot", "po-debconf"}
    for flavour in FLAVOURS.values():
        if dist in flavour.dists:
            packages.update(flavour.build_depends)
    packages.update(SELF_BUILD_DEPENDS if dist in SELF_DISTS else ())
    return sorted(packages)
