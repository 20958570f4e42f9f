"""Mailman's own unit test suite (tests/ in the tarball) on what we build: the packages of the
flavour's default distribution in prefix and shared mode, each in a throw-away host, and, side
by side in a host of the same kind, a plain `./configure && make install` of the same tarball.
Upstream's own failures (patches/README lists them) are the plain install's too; the package
must pass every test the plain install passes.

Needs the real upstream tarball, root and the Debian mirror.
"""

import pytest

from helpers.upstreams import DOMAIN, REAL_TARBALL, domain_debs
from helpers.e2e_host import prefix
from mmdeb.upstream.dists import FLAVOURS
from helpers.upstream_suite import counts, failing, install_plain, install_tests, run_suite, source_tree, suite_host

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]


@pytest.fixture(scope="module")
def trees(upstream, built, tmp_path_factory):
    """Our patched source (its tests/ run on every install) and the unpatched one (the plain install)."""
    (dsc,) = built.glob(f"mailman-{DOMAIN}_*.dsc")
    top = tmp_path_factory.mktemp("suite-source")
    return source_tree(dsc, top / "patched", True), source_tree(dsc, top / "plain", False)


def outcomes_in_new_host(upstream, tmp_path_factory, install) -> dict[str, dict]:
    """Install (host -> prefix) in a new host, our tests/ into the prefix, then the suite."""
    host = suite_host(tmp_path_factory.mktemp("suite-host") / "host", upstream)
    try:
        where, patched = install(host)
        install_tests(host, patched, where)
        return run_suite(host, where, FLAVOURS[upstream.flavour].python)
    finally:
        host.stop()


@pytest.fixture(scope="module")
def plain(upstream, trees, tmp_path_factory):
    patched, unpatched = trees
    return outcomes_in_new_host(upstream, tmp_path_factory, lambda host: (install_plain(host, unpatched, upstream), patched))


def packaged(upstream, trees, tmp_path_factory, debs) -> dict[str, dict]:
    def install(host):
        host.install_offline(debs)
        return prefix(DOMAIN), trees[0]
    return outcomes_in_new_host(upstream, tmp_path_factory, install)


@pytest.fixture(scope="module")
def package_prefix(upstream, trees, built, tmp_path_factory):
    return packaged(upstream, trees, tmp_path_factory, domain_debs(built, DOMAIN))


@pytest.fixture(scope="module")
def package_shared(upstream, trees, built_shared, tmp_path_factory):
    return packaged(upstream, trees, tmp_path_factory, domain_debs(built_shared, DOMAIN))


def table(outcomes: dict[str, dict]) -> str:
    lines = [f"  {module:24} ran {o['ran']:3}  failures {len(o['failures']):2}  errors {len(o['errors']):2}"
             for module, o in outcomes.items()]
    ran, failures, errors = counts(outcomes)
    return "\n".join([*lines, f"  {'total':24} ran {ran:3}  failures {failures:2}  errors {errors:2}"])


@pytest.mark.parametrize("mode", ["prefix", "shared"])
def test_the_package_passes_every_test_the_plain_install_passes(request, upstream, plain, mode, capsys):
    package = request.getfixturevalue(f"package_{mode}")
    with capsys.disabled():
        print(f"\n{upstream.flavour} plain install:\n{table(plain)}\n{upstream.flavour} package, {mode} mode:\n{table(package)}")
        print("failing in the plain install:", *sorted(failing(plain)), sep="\n  ")
    assert {module: o["ran"] for module, o in package.items()} == {module: o["ran"] for module, o in plain.items()}
    assert failing(package) - failing(plain) == set()


def test_the_smtp_path_is_tested(upstream, plain, package_prefix):
    """Ported off asyncore (patches/py3): a message goes through the queues and SMTPDirect to an SMTP server."""
    if upstream.flavour != "py3":
        pytest.skip("the port is for Python 3.12+, where asyncore and smtpd are gone")
    for outcomes in (plain, package_prefix):
        assert outcomes["test_smtp"] == {"ran": 1, "failures": [], "errors": []}
        assert outcomes["test_message"]["ran"] == 2
        assert outcomes["test_message"]["errors"] == []
        assert "test_message.TestSentMessage1.test_user_notification" not in outcomes["test_message"]["failures"]
