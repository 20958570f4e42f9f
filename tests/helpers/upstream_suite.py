"""Mailman's own unit tests (tests/ in the tarball) against an installed Mailman in a test host:
the packages we build, and, side by side, a plain `./configure && make install` of the same
tarball. The suite changes the site it runs on (the site password, an `_xtest` list), so it runs
only in throw-away hosts.

Both installs get the same tests/: those of our patched source, which port the SMTP tests off
asyncore (patches/py3). The packages ship no tests/; the plain install's are replaced.
"""

import json
import shutil
import subprocess
from pathlib import Path

from helpers.upstreams import DOMAIN, runtime_packages
from helpers.e2e_host import MTA_DEBCONF, Host
from mmdeb.app.places import current as current_places
from mmdeb.domains.settings import DEFAULTS
from mmdeb.run import Runner
from mmdeb.upstream.catalogue import DEFAULTS as SHIPPED_CATALOGUE, read
from mmdeb.upstream.dists import FLAVOURS
from mmdeb.upstream.tarball import resolve

RUNNER = Path(__file__).with_name("upstream_unittest.py")
# Upstream's default prefix, away from the packages' /var/lib/mailmen.
PLAIN_PREFIX = "/usr/local/mailman"
PLAIN_SOURCE = "/usr/src/mailman"
# A whole module gets this long; the longest (test_handlers) takes well under a minute.
MODULE_TIMEOUT = 900


def suite_host(root: Path, upstream) -> Host:
    """A started host with what the package needs, what a plain install builds with, and the
    SMTP server of the ported tests. No service starts: running qrunners would take the
    messages that the handler tests queue and then read back."""
    flavour = FLAVOURS[upstream.flavour]
    packages = [*runtime_packages(flavour.name, upstream.dist), *flavour.build_depends, "build-essential", "postfix"]
    if upstream.flavour == "py3":
        packages.append("python3-aiosmtpd")
    host = Host.create(root, upstream.dist, packages, MTA_DEBCONF["postfix"])
    policy = host.root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    host.start()
    return host


def source_tree(dsc: Path, dest: Path, patched: bool) -> Path:
    """The source package's tree, with or without our patches (quilt)."""
    skip = [] if patched else ["--skip-patches"]
    subprocess.run(["dpkg-source", *skip, "--extract", str(dsc), str(dest)], check=True, capture_output=True)
    return dest


def install_plain(host: Host, tree: Path, upstream) -> str:
    """configure && make install of the unpatched tree, as Mailman's INSTALL says: a setgid
    prefix of Mailman's group, then bin/check_perms -f. Same user, group and host names as the
    package; the gnu flavour's dnspython component goes where the package puts it."""
    components = resolve(str(upstream.tarball), upstream.flavour, read(SHIPPED_CATALOGUE), current_places().cache, Runner()).components
    shutil.copytree(tree, host.root / PLAIN_SOURCE.lstrip("/"), symlinks=True)
    pythonpath = ":".join(f"{PLAIN_SOURCE}/{component.name}" for component in components)
    host.run("install", "-d", "-g", "list", "-m", "2775", PLAIN_PREFIX)
    configure = [
        "./configure", f"--prefix={PLAIN_PREFIX}", f"--with-python={FLAVOURS[upstream.flavour].python}",
        "--with-username=list", "--with-groupname=list", f"--with-mail-gid={DEFAULTS['mail_gid']}",
        f"--with-cgi-gid={DEFAULTS['cgi_gid']}", f"--with-mailhost={DOMAIN}", f"--with-urlhost={DOMAIN}",
    ]
    host.run("env", "-C", PLAIN_SOURCE, f"PYTHONPATH={pythonpath}", *configure)
    host.run("make", "-C", PLAIN_SOURCE, "install")
    for component in components:
        host.run("cp", "-r", f"{PLAIN_SOURCE}/{component.name}/{component.import_name}", f"{PLAIN_PREFIX}/pythonlib/")
    host.run(f"{PLAIN_PREFIX}/bin/check_perms", "-f", check=False)  # exits 1 when it fixed something
    return PLAIN_PREFIX


def install_tests(host: Host, patched_tree: Path, prefix: str) -> None:
    """Our source's tests/ under prefix, with the prefix's paths.py (as make install puts it
    there) and our runner, Mailman's user's (the tests write their byte-code there)."""
    target = host.root / prefix.lstrip("/") / "tests"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(patched_tree / "tests", target)
    shutil.copy(target.parent / "bin/paths.py", target / "paths.py")
    shutil.copy(RUNNER, target / RUNNER.name)
    host.run("chown", "-R", "list:list", f"{prefix}/tests")


def run_suite(host: Host, prefix: str, python: str) -> dict[str, dict]:
    """Each test module's outcome ({"ran", "failures", "errors"}), run as Mailman's user."""
    tests = f"{prefix}/tests"
    outcomes = {}
    for module in sorted(path.stem for path in (host.root / tests.lstrip("/")).glob("test_*.py")):
        done = host.run("timeout", str(MODULE_TIMEOUT), python, f"{tests}/{RUNNER.name}", tests, module,
                        user="list", check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            outcomes[module] = {"ran": 0, "failures": [], "errors": [f"{module}: exit {done.returncode}: {done.stderr[-2000:]}"]}
        else:
            outcomes[module] = json.loads(lines[-1])
    return outcomes


def failing(outcomes: dict[str, dict]) -> set[str]:
    return {test for outcome in outcomes.values() for test in outcome["failures"] + outcome["errors"]}


def counts(outcomes: dict[str, dict]) -> tuple[int, int, int]:
    """ran, failures, errors over all modules."""
    return (sum(o["ran"] for o in outcomes.values()), sum(len(o["failures"]) for o in outcomes.values()),
            sum(len(o["errors"]) for o in outcomes.values()))
