"""One apt transaction, two domains: mailmen-common's trigger hooks both up to the MTA (Postfix,
or Exim) and the web server (Apache, or nginx) and reloads each server once, never restarting
it; main.cf names our maps once; removing one domain reloads each server once and leaves the
other served. On real Mailman, in a fresh mmdebstrap host (tests/helpers/e2e_host.py).
"""

import pytest

from helpers.e2e_host import HOSTNAME, MTA_DEBCONF, WEB_SERVERS, Host, prefix, start_web_server
from helpers.lists import address, wait_until
from helpers.tls import curl_argv, preseed_certificates
from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from mmdeb.domains.layout import POSTFIX_MAPS_DIR

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

MTA_START = {"postfix": ["postfix", "start"], "exim4-daemon-light": ["/etc/init.d/exim4", "start"]}
SERVICE = {"postfix": "postfix", "exim4-daemon-light": "exim4"}
ADMINS_LINE = "smtpd_banner = $myhostname ESMTP admins-own-banner"


def reloads(calls: list[str]) -> dict[str, int]:
    """How often each server was reloaded; a restart of one fails the test."""
    assert not [call for call in calls if call.split()[-1] in ("restart", "force-reload")
                and call.split()[1] in ("apache2", "nginx", "exim4", "postfix")], calls
    counted = {}
    for call in calls:
        words = call.split()
        if words[0] == "invoke-rc.d" and words[2:] == ["reload"]:
            counted[words[1]] = counted.get(words[1], 0) + 1
        elif words == ["postfix", "reload"]:
            counted["postfix"] = counted.get("postfix", 0) + 1
    return counted


def served(host: Host, domain: str) -> str:
    return host.run(*curl_argv(domain, "mailman/listinfo"), "-sSf").stdout


@pytest.fixture(scope="module", params=[("postfix", "apache2"), ("exim4-daemon-light", "nginx")],
                ids=lambda param: "-".join(param))
def host(request, upstream, built, tmp_path_factory):
    mta, server = request.param
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    root = tmp_path_factory.mktemp(f"hookup-{mta}-{server}") / "host"
    machine = Host.create(root, upstream.dist, [mta, "curl", *WEB_SERVERS[server][0], *runtime], MTA_DEBCONF[mta])
    machine.mta, machine.server = mta, server
    machine.allow_service_starts()
    machine.start()
    try:
        if mta == "postfix":
            machine.run("postconf", "-e", f"myhostname = {HOSTNAME}", ADMINS_LINE)
        machine.run("useradd", "--create-home", "alice")
        machine.run(*MTA_START[mta])
        start_web_server(machine, server)
        preseed_certificates(machine, DOMAIN, OTHER_DOMAIN)
        machine.count_calls("/usr/sbin/invoke-rc.d", "/usr/sbin/postfix")
        machine.calls()
        installed = machine.apt_install_offline(domain_debs(built, DOMAIN, OTHER_DOMAIN))
        machine.install_log = installed.stdout + installed.stderr
        machine.install_calls = machine.calls()
        # As root, and as list (as the web's create does): postalias keeps the alias database's owner.
        for domain, user in ((DOMAIN, None), (OTHER_DOMAIN, "list")):
            machine.run(f"{prefix(domain)}/bin/newlist", "-q", "users", address("alice"), "listpassword", user=user)
        yield machine
    finally:
        machine.stop()


@pytest.fixture(autouse=True)
def installed(host):
    """Each test starts with both domains installed (the removal test removes one)."""
    if removed := host.removed():
        host.apt_install_offline([host.installed[package] for package in removed])


def test_one_transaction_reloads_each_server_once(host):
    """Apache's mod_cgid starts its daemon only at the second graceful restart after it is first
    loaded, so the host's first domain reloads Apache twice (and later ones once)."""
    web = 2 if host.server == "apache2" else 1
    assert reloads(host.install_calls) == {SERVICE[host.mta]: 1, host.server: web}, host.install_log
    if host.server == "apache2":  # and gracefully: a restart would cut every other site off
        log = (host.root / "var/log/apache2/error.log").read_text()
        assert "SIGHUP" not in log and log.count("SIGUSR1 received") == 2, log


def test_both_domains_are_served_and_take_mail(host):
    for domain in (DOMAIN, OTHER_DOMAIN):
        assert 'href="listinfo/users"' in served(host, domain)
        host.send(address("alice"), f"users-request@{domain}", "help", body="help", user="alice")
        host.wait_for_mail("alice", lambda m, domain=domain: domain in (m["From"] or ""))


def test_main_cf_names_our_maps_once_and_keeps_the_admins_lines(host):
    if host.mta != "postfix":
        pytest.skip("Postfix only")
    main_cf = (host.root / "etc/postfix/main.cf").read_text()
    assert ADMINS_LINE in main_cf
    settings = {name: host.run("postconf", "-h", name).stdout.strip()
                for name in ("alias_maps", "virtual_alias_maps", "virtual_alias_domains")}
    assert settings == {"alias_maps": f"hash:/etc/aliases, hash:{POSTFIX_MAPS_DIR}/aliases-daemon",
                        "virtual_alias_maps": f"$virtual_maps, hash:{POSTFIX_MAPS_DIR}/virtual",
                        "virtual_alias_domains": f"$virtual_alias_maps, hash:{POSTFIX_MAPS_DIR}/domains"}, settings
    owner = host.run("stat", "-c", "%U:%G", f"{POSTFIX_MAPS_DIR}/aliases-daemon.db").stdout.strip()
    assert owner == "daemon:list"


def test_removing_one_domain_reloads_once_and_leaves_the_other(host):
    host.calls()
    before = host.run("ls", "/run/apache2", check=False).stdout
    removed = host.run("apt-get", "remove", "--yes", f"mailman-{OTHER_DOMAIN}")
    assert reloads(host.calls()) == {SERVICE[host.mta]: 1, host.server: 1}, (before, removed.stdout + removed.stderr)
    assert 'href="listinfo/users"' in served(host, DOMAIN)
    if host.mta == "postfix":
        assert host.run("postmap", "-q", OTHER_DOMAIN, f"hash:{POSTFIX_MAPS_DIR}/domains", check=False).returncode
        assert host.run("postmap", "-q", DOMAIN, f"hash:{POSTFIX_MAPS_DIR}/domains").stdout.strip()
    else:  # 127.0.0.2 is outside Exim's relay_from_hosts
        refused = host.run("curl", "-sS", "--interface", "127.0.0.2", "--url", "smtp://127.0.0.1", "--mail-from",
                           address("alice"), "--mail-rcpt", f"users@{OTHER_DOMAIN}", "-T", "/etc/hostname", check=False)
        assert refused.returncode, refused.stdout + refused.stderr
    wait_until(lambda: 'href="listinfo/users"' in served(host, DOMAIN), what=f"{DOMAIN} still served")
