"""List mail that receivers accept, with real mail and real DNS: each domain's list mail DKIM-signed
by the MTA's own mechanism (Postfix: mailmen-common's opendkim instance; Exim: its remote
transport), a p=reject poster's From munged, and the records `mailmen-dkim` prints, published
and checked.

A fresh mmdebstrap host with the domain package and mailmen-common runs in a network namespace
of its own, with dnsmasq answering for the test zones: example.com (p=reject), example.net
(p=none), the list domain (the records mailmen-dkim prints) and the members' mail exchanger. That
exchanger, an SMTP sink in a second namespace linked to the first, stands for the members'
providers: the list mail leaves by the MTA's remote transport, as it would to Gmail. dkimpy
(python3-dkim) verifies each message it takes, with the keys from the same DNS server.

Needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL), root, dnsmasq and python3-dkim.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from email import message_from_bytes
from email.header import decode_header, make_header
from email.utils import parseaddr
from pathlib import Path

import pytest

from helpers.e2e_host import HOSTNAME, Host, prefix
from helpers.lists import ARTIFACTS, wait_until
from helpers.netns_dns import LOOPBACK, SMTP_SINK, Netns, dnsmasq_argv
from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL, build, domain_debs, runtime_packages
from mmdeb.domains.domain import Domain
from mmdeb.upstream.dists import FLAVOURS

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

VERIFY = Path(__file__).parent / "helpers" / "dkim_verify.py"
HOST_ADDRESS = "192.0.2.1"  # the list host, on the link to the receiver
RECEIVER = "192.0.2.25"  # the members' mail exchanger (outside Exim's ignore_target_hosts)
EXCHANGER = "mx.example.com"
ZONES = ("example.com", "example.net", "example.org", "example")
REJECT_POSTER = "rachel@example.com"
NONE_POSTER = "nick@example.net"
MEMBER = "mia@example.net"
DIGEST_MEMBER = "dora@example.com"
OWNER = "owen@example.net"
POLICIES = {"_dmarc.example.com": [["v=DMARC1; p=reject"]], "_dmarc.example.net": [["v=DMARC1; p=none"]]}
MTA_DEBCONF = {  # sending to the Internet: Exim's remote_smtp transport is the one that signs
    "postfix": ("postfix postfix/main_mailer_type select Internet Site\n"
                f"postfix postfix/mailname string {HOSTNAME}\n"),
    "exim4-daemon-light": (
        "exim4-config exim4/dc_eximconfig_configtype select internet site; mail is sent and received directly using SMTP\n"
        f"exim4-config exim4/mailname string {HOSTNAME}\n"
        f"exim4-config exim4/dc_other_hostnames string {HOSTNAME}\n"
        "exim4-config exim4/dc_local_interfaces string 127.0.0.1 ; ::1\n"
        "exim4-config exim4/use_split_config boolean true\n"),
}
SIGNER_PACKAGES = {"postfix": ["postfix", "opendkim"], "exim4-daemon-light": ["exim4-daemon-light"]}
MTA_START = {"postfix": ["postfix", "start"], "exim4-daemon-light": ["/etc/init.d/exim4", "start"]}


def link(host: Host) -> Netns:
    """A namespace for the receiver, linked to the host's: HOST_ADDRESS there, RECEIVER here."""
    receiver = Netns(f"{host.netns}-rx")
    subprocess.run(["ip", "netns", "add", receiver.name], check=True)
    for argv in (["ip", "link", "add", "mmdeb-h", "netns", host.netns, "type", "veth", "peer", "name", "mmdeb-r",
                  "netns", receiver.name],
                 ["ip", "-n", host.netns, "addr", "add", f"{HOST_ADDRESS}/24", "dev", "mmdeb-h"],
                 ["ip", "-n", receiver.name, "addr", "add", f"{RECEIVER}/24", "dev", "mmdeb-r"],
                 ["ip", "-n", host.netns, "link", "set", "mmdeb-h", "up"],
                 ["ip", "-n", receiver.name, "link", "set", "mmdeb-r", "up"],
                 ["ip", "-n", receiver.name, "link", "set", "lo", "up"]):
        subprocess.run(argv, check=True)
    return receiver


def zone_records(text: str) -> dict[str, list[list[str]]]:
    """The TXT records of `mailmen-dkim records` output: name -> [character strings]."""
    records = {}
    for line in text.splitlines():
        if match := re.match(r"^(\S+)\. IN TXT (.*)$", line):
            records.setdefault(match.group(1), []).append(re.findall(r'"([^"]*)"', match.group(2)))
    return records


class Site:
    """The host, its DNS server and the receiver's sink, with what the tests need of them."""

    def __init__(self, host: Host, receiver: Netns, sink: Path):
        self.host, self.receiver, self.sink = host, receiver, sink
        self.published: dict[str, list[list[str]]] = {}
        self.dns = None

    def publish(self, records: dict[str, list[list[str]]]) -> None:
        """Serve POLICIES and records (besides those published before) from a fresh dnsmasq."""
        self.published.update(records)
        if self.dns:
            self.dns.__exit__(None, None, None)
        argv = dnsmasq_argv(ZONES, {**POLICIES, **self.published}, mx={domain: EXCHANGER for domain in ("example.com", "example.net")},
                            addresses={EXCHANGER: RECEIVER, HOSTNAME: HOST_ADDRESS})
        self.dns = Netns(self.host.netns).daemon(argv, ready="started")
        self.dns.__enter__()

    def records(self, domain: str) -> dict[str, list[list[str]]]:
        return zone_records(self.host.run("mailmen-dkim", "records", domain).stdout)

    def delivered(self, predicate, timeout: float = 90) -> list[tuple[Path, object]]:
        """The messages at the receiver that predicate accepts, once there is one."""
        def found():
            messages = [(path, received(path)) for path in sorted(self.sink.glob("*.eml"))]
            return [(path, message) for path, message in messages if predicate(message)]
        return wait_until(found, timeout=timeout, what="the list mail at the receiver")

    def verify(self, paths: list[Path]) -> dict[str, dict]:
        argv = ["ip", "netns", "exec", self.host.netns, "/usr/bin/python3", str(VERIFY), LOOPBACK, *map(str, paths)]
        return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def received(path: Path):
    """A message the receiver took, with its envelope recipients as .recipients."""
    message = message_from_bytes(path.read_bytes())
    message.recipients = path.with_suffix(".rcpt").read_text().split()
    return message


def subject_has(token: str):
    return lambda message: token in (message["Subject"] or "")


def text_of(message) -> str:
    """The decoded subject and text parts (Mailman's notices are base64-encoded UTF-8)."""
    parts = [str(make_header(decode_header(message["Subject"] or "")))]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)


@pytest.fixture(scope="module", params=[(mta, mode) for mode in ("prefix", "shared") for mta in ("postfix", "exim4-daemon-light")],
                ids=lambda param: "-".join(param))
def site(request, upstream, tmp_path_factory):
    mta, mode = request.param
    top = tmp_path_factory.mktemp(f"dkim-{mta}-{mode}")
    built = build(upstream, top / "built", DOMAIN, OTHER_DOMAIN, mode=mode)
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    host = Host.create(top / "host", upstream.dist, [*SIGNER_PACKAGES[mta], *runtime],
                       MTA_DEBCONF[mta])
    host.allow_service_starts()
    host.start()
    receiver = link(host)
    sink = top / "sink"
    sink.mkdir()
    served = Site(host, receiver, sink)
    served.python, served.mta = FLAVOURS[upstream.flavour].python, mta
    try:
        (host.root / "etc/resolv.conf").unlink(missing_ok=True)
        (host.root / "etc/resolv.conf").write_text(f"nameserver {LOOPBACK}\n")
        if mta == "postfix":
            # Its log, for a failure's story: the host runs no syslog.
            host.run("postconf", "-e", f"myhostname = {HOSTNAME}", "inet_protocols = ipv4", "maillog_file = /var/log/postfix.log")
            # Its chrooted smtp client reads the chroot's copies (which the init script would make).
            chroot_etc = host.root / "var/spool/postfix/etc"
            chroot_etc.mkdir(parents=True, exist_ok=True)
            for name in ("resolv.conf", "services", "hosts", "nsswitch.conf", "host.conf"):
                if (host.root / "etc" / name).exists():
                    shutil.copy(host.root / "etc" / name, chroot_etc / name)
        with receiver.daemon([sys.executable, str(SMTP_SINK), str(sink), "25", RECEIVER], ready="listening"):
            served.publish({})
            host.run(*MTA_START[mta])
            served.install_log = host.install_offline(domain_debs(built, DOMAIN, OTHER_DOMAIN)).stderr
            served.publish(served.records(DOMAIN))  # OTHER_DOMAIN's records stay unpublished
            bin_dir = f"{prefix(DOMAIN)}/bin"
            host.run(f"{bin_dir}/newlist", "-q", "users", OWNER, "listpassword")
            settings = "generic_nonmember_action = 0\nadmin_notify_mchanges = 1\ndigestable = 1\n"
            host.run(f"{bin_dir}/config_list", "-i", "/dev/stdin", "users", input=settings)
            host.run(f"{bin_dir}/add_members", "-r", "-", "-w", "n", "-a", "n", "users", input=f"{MEMBER}\n")
            host.run(f"{bin_dir}/add_members", "-d", "-", "-w", "n", "-a", "n", "users", input=f"{DIGEST_MEMBER}\n")
            # A personalized list: each member's copy has her own one-click List-Unsubscribe.
            host.run(f"{bin_dir}/newlist", "-q", "oneclick", OWNER, "listpassword")
            host.run(f"{bin_dir}/config_list", "-i", "/dev/stdin", "oneclick", input="generic_nonmember_action = 0\npersonalize = 1\n")
            host.run(f"{bin_dir}/add_members", "-r", "-", "-w", "n", "-a", "n", "oneclick", input=f"{MEMBER}\n")
            yield served
    finally:
        if served.dns:
            served.dns.__exit__(None, None, None)
        host.stop()
        subprocess.run(["ip", "netns", "delete", receiver.name], check=False)


def post(site: Site, poster: str, token: str) -> None:
    site.host.send(poster, f"users@{DOMAIN}", f"post {token}", body=f"Hello {token}")


def signed_by_the_list(site: Site, paths: list[Path], selector: str | None = None) -> None:
    """Each message verifies with d=DOMAIN, and its signature covers From, Sender and the list
    fields it has (a list post's List-Id and List-Unsubscribe; a notice has none)."""
    for path, result in site.verify(paths).items():
        assert result["valid"] and result["d"] == DOMAIN, f"{path}: {result}\n{Path(path).read_text()[:2000]}"
        assert not selector or result["s"] == selector, result
        fields = {name.lower() for name in received(Path(path)).keys()}
        assert {"from", "sender"} | (fields & {"list-id", "list-unsubscribe", "list-unsubscribe-post"}) <= set(result["h"]), result


def test_install_makes_a_key_and_points_to_the_records(site):
    key = Path(Domain(DOMAIN).dkim_dir)
    selector = (site.host.root / key.relative_to("/") / "selector").read_text().strip()
    private = site.host.root / key.relative_to("/") / f"{selector}.private"
    signer = "Debian-exim" if (site.host.root / "usr/sbin/exim4").exists() else "opendkim"
    owner = site.host.run("stat", "-c", "%U %a", str(key / f"{selector}.private")).stdout.split()
    assert owner == [signer, "600"] and private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert f"mailmen-dkim records {DOMAIN}" in site.install_log, site.install_log
    names = site.records(DOMAIN)
    assert set(names) == {f"{selector}._domainkey.{DOMAIN}", DOMAIN, f"_dmarc.{DOMAIN}"}


def test_the_dns_check_finds_the_published_records_and_the_missing_ones(site):
    assert site.host.run("mailmen-dkim", "check", DOMAIN).stdout.count(": ok") == 3
    unpublished = site.host.run("mailmen-dkim", "check", OTHER_DOMAIN, check=False)
    assert unpublished.returncode == 1 and unpublished.stdout.count(": missing: publish ") == 3, unpublished.stdout


def test_a_p_reject_posters_from_is_munged_and_the_copy_signed_aligned(site):
    token = uuid.uuid4().hex
    post(site, REJECT_POSTER, token)
    ((path, message),) = site.delivered(subject_has(token))
    assert parseaddr(message["From"])[1] == f"users@{DOMAIN}", message["From"]
    assert REJECT_POSTER in message["Reply-To"] or REJECT_POSTER in message.get("Cc", "")
    signed_by_the_list(site, [path])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # for the README: a munged, signed copy's header
    (ARTIFACTS / f"dkim-munged-{site.host.netns}.eml").write_bytes(path.read_bytes())


def test_a_p_none_posters_from_is_kept_and_the_copy_signed(site):
    token = uuid.uuid4().hex
    post(site, NONE_POSTER, token)
    ((path, message),) = site.delivered(subject_has(token))
    assert parseaddr(message["From"])[1] == NONE_POSTER
    signed_by_the_list(site, [path])


def test_the_signature_covers_the_one_click_unsubscribe_fields(site):
    """RFC 8058, section 4: a personalized list's copy is signed over List-Unsubscribe and
    List-Unsubscribe-Post (signed_by_the_list checks that every list field present is covered)."""
    token = uuid.uuid4().hex
    site.host.send(NONE_POSTER, f"oneclick@{DOMAIN}", f"post {token}", body=token)
    ((path, message),) = site.delivered(subject_has(token))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", message.as_string()[:2000]
    assert "".join(message["List-Unsubscribe"].split()).startswith(f"<https://{DOMAIN}/mailman/unsubscribe/oneclick/")
    signed_by_the_list(site, [path])


def test_confirmations_digests_owner_notices_and_bounces_are_signed(site):
    newcomer = f"n{uuid.uuid4().hex[:8]}@example.net"
    site.host.send(newcomer, f"users-join@{DOMAIN}", "join")
    confirmations = site.delivered(lambda m: newcomer in m.recipients and "confirm" in (m["Subject"] or ""))
    subscriber = f"s{uuid.uuid4().hex[:8]}@example.net"
    site.host.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", "-w", "y", "-a", "y", "users", input=f"{subscriber}\n")
    notices = site.delivered(lambda m: m.recipients == [OWNER] and subscriber in text_of(m))
    welcomes = site.delivered(lambda m: m.recipients == [subscriber] and "Welcome" in text_of(m))
    bounce = uuid.uuid4().hex  # a bounce Mailman does not recognise goes to the owner
    site.host.send(f"mailer-daemon@{HOSTNAME}", f"users-bounces@{DOMAIN}", f"odd bounce {bounce}", body=bounce)
    forwarded = site.delivered(lambda m: m.recipients == [OWNER] and bounce in text_of(m))
    token = uuid.uuid4().hex
    post(site, NONE_POSTER, token)
    site.delivered(subject_has(token))
    site.host.run(site.python, f"{prefix(DOMAIN)}/cron/senddigests", user="list")
    digests = site.delivered(lambda m: DIGEST_MEMBER in m.recipients and token in text_of(m))
    signed_by_the_list(site, [path for path, _ in [*confirmations, *notices, *welcomes, *forwarded, *digests]])


def delivered_unsigned(site: Site) -> None:
    token = uuid.uuid4().hex
    post(site, NONE_POSTER, token)
    ((path, _),) = site.delivered(subject_has(token))
    assert not site.verify([path])[str(path)]["valid"]


def delivered_signed(site: Site) -> None:
    token = uuid.uuid4().hex
    post(site, NONE_POSTER, token)
    ((path, _),) = site.delivered(subject_has(token))
    signed_by_the_list(site, [path])


def current_key_file(site: Site) -> Path:
    key_dir = site.host.root / Domain(DOMAIN).dkim_dir.lstrip("/")
    return key_dir / f"{(key_dir / 'selector').read_text().strip()}.private"


def test_a_missing_key_sends_unsigned_mail_and_says_so(site):
    key = current_key_file(site)
    aside = key.with_name("aside")
    key.rename(aside)
    try:
        said = site.host.run("mailmen-dkim", "setup").stdout
        assert f"{Domain(DOMAIN).dkim_dir}/{key.name} is missing, so {DOMAIN}'s mail goes out unsigned" in said, said
        site.host.run("invoke-rc.d", "mailmen-dkim", "restart")
        delivered_unsigned(site)
    finally:
        aside.rename(key)
        site.host.run("invoke-rc.d", "mailmen-dkim", "restart")
    delivered_signed(site)


def test_a_key_the_signer_cannot_read_is_given_back_to_it(site):
    """Exim sends unsigned and logs why; setup (which the signer's start runs) repairs the key."""
    key = current_key_file(site)
    os.chown(key, 0, 0)  # root's only: neither Debian-exim nor opendkim reads it
    if site.mta == "exim4-daemon-light":
        delivered_unsigned(site)
        logged = f"unable to open file for reading: {Domain(DOMAIN).dkim_dir}/{key.name}"
        wait_until(lambda: logged in (site.host.root / "var/log/exim4/mainlog").read_text(), what="Exim to log why")
    said = site.host.run("mailmen-dkim", "setup").stdout
    assert f"{Domain(DOMAIN).dkim_dir}/{key.name} was not the signer's own" in said, said
    site.host.run("invoke-rc.d", "mailmen-dkim", "restart")
    delivered_signed(site)


def test_a_rotated_key_signs_once_published_and_activated(site):
    selector = f"r{uuid.uuid4().hex[:6]}"
    made = site.host.run("mailmen-dkim", "rotate", DOMAIN, "--selector", selector).stdout
    refused = site.host.run("mailmen-dkim", "activate", DOMAIN, selector, check=False)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1 and "missing" in refused.stderr, refused.stderr
    site.publish(zone_records(made))
    site.host.run("mailmen-dkim", "activate", DOMAIN, selector)
    token = uuid.uuid4().hex
    post(site, REJECT_POSTER, token)
    ((path, _),) = site.delivered(subject_has(token))
    signed_by_the_list(site, [path], selector=selector)


def test_the_admins_own_key_signs(site, tmp_path):
    own = site.host.root / "root/own-key.pem"
    site.host.run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "/root/own-key.pem")
    said = site.host.run("mailmen-dkim", "use-key", DOMAIN, "own", "/root/own-key.pem").stdout
    site.publish(zone_records(said))
    token = uuid.uuid4().hex
    post(site, NONE_POSTER, token)
    ((path, _),) = site.delivered(subject_has(token))
    signed_by_the_list(site, [path], selector="own")
    assert own.exists(), "use-key copies the key; the admin's file stays"
