import pytest

from mmdeb.domains.domain import Domain
from mmdeb.errors import MmdebError


def test_names_derived_from_the_domain():
    domain = Domain.parse("lists.example.org")
    assert domain.package == "mailman-lists.example.org"
    assert domain.prefix == "/var/lib/mailmen/lists.example.org"
    assert domain.log_dir == "/var/log/mailmen/lists.example.org"
    assert domain.lock_dir == "/run/lock/mailmen/lists.example.org"
    assert domain.mm_cfg == "/etc/mailmen/lists.example.org/mm_cfg.py"
    assert domain.site_list_dir == "/var/lib/mailmen/lists.example.org/lists/mailman"
    assert domain.site_list_password == "/etc/mailmen/lists.example.org/site-list-password"
    assert domain.nginx_tls_conf == "/etc/mailmen/lists.example.org/nginx-tls.conf"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Lists.Example.ORG", "lists.example.org"),
        ("lists.example.org.", "lists.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("LISTEN.BÜCHER.example", "listen.xn--bcher-kva.example"),
    ],
)
def test_normalised_to_lower_case_a_label(raw, expected):
    assert Domain.parse(raw).name == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("../x", "path separator"),
        ("lists/example.org", "path separator"),
        ("exa mple.org", "white space"),
        ("", "empty"),
        ("a" * 250 + ".org", "over the limit of 253"),
        ("x" * 64 + ".org", "invalid label"),
        ("-lists.example.org", "invalid label"),
        ("lists_x.example.org", "invalid label"),
        ("localhost", "not fully qualified"),
    ],
)
def test_bad_names_refused_with_a_remedy(raw, reason):
    with pytest.raises(MmdebError) as caught:
        Domain.parse(raw)
    assert reason in caught.value.message
    assert "lists.example.org" in caught.value.remedy
