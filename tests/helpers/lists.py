"""Lists, members and mail in a test host: joins, posts and leaves as the e2e and booted-host tests check them."""

import time
import uuid

from helpers.e2e_host import HOSTNAME, Host, prefix
from helpers.upstreams import DOMAIN
from mmdeb import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "build" / "test-artifacts"
USERS = ("alice", "bob", "carol")  # the test hosts' users, each with a mailbox


def address(user: str) -> str:
    return f"{user}@{HOSTNAME}"


def members(host: Host, domain: str, listname: str = "users") -> list[str]:
    return host.run(f"{prefix(domain)}/bin/list_members", listname).stdout.split()


def wait_until(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def set_members(host: Host, domain: str, *users: str) -> None:
    """users@domain's members made exactly users (without mail), as a test's starting point."""
    wanted, now = {address(user) for user in users}, set(members(host, domain))
    if now - wanted:
        host.run(f"{prefix(domain)}/bin/remove_members", "--nouserack", "--noadminack", "users", *sorted(now - wanted))
    if wanted - now:
        host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "--welcome-msg=n", "--admin-notify=n", "users",
                 input="".join(f"{member}\n" for member in sorted(wanted - now)))


def confirm_by_reply(host: Host, user: str, seen: set[str]) -> None:
    """Answer the next confirmation request in user's mailbox, as a mail reader's reply would."""
    request = host.wait_for_mail(user, lambda m: (m["Subject"] or "").startswith("confirm ") and m["Subject"] not in seen)
    seen.add(request["Subject"])
    host.send(address(user), request["Reply-To"], f"Re: {request['Subject']}", user=user)


def check_post_reaches_alice_and_bob_not_carol(host) -> None:
    """alice posts to users@DOMAIN; alice and bob get it, carol (of OTHER_DOMAIN's list) not."""
    token = uuid.uuid4().hex
    host.send(address("alice"), f"users@{DOMAIN}", f"post {token}", body=f"body {token}", user="alice")
    for user in ("alice", "bob"):
        post = host.wait_for_mail(user, lambda m: token in (m["Subject"] or ""))
        assert f"body {token}" in post.get_payload(decode=True).decode()
    time.sleep(5)  # give a wrongly routed copy time to arrive
    assert not [m for m in host.mailbox("carol") if token in m.as_string()]


def check_alice_leaves_by_mail(host) -> None:
    """alice leaves users@DOMAIN by mail, confirming by reply; bob stays."""
    seen = {m["Subject"] for m in host.mailbox("alice")}
    host.send(address("alice"), f"users-leave@{DOMAIN}", "leave", user="alice")
    confirm_by_reply(host, "alice", seen)
    wait_until(lambda: address("alice") not in members(host, DOMAIN), what="alice to leave")
    assert members(host, DOMAIN) == [address("bob")]
