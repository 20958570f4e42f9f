"""`mmdeb upstream check`: the pure version finder, and the command against a local HTTP server."""

import functools
import http.server
import re
import threading

import pytest

from mmdeb.cli import main
from mmdeb.upstream.catalogue import DEFAULTS, read
from mmdeb.upstream.watch import Release, newer_releases

GNU_REGEX = r"mailman-(2\.1\.[0-9]+)\.tgz"
# As ftp.gnu.org lists a directory: each release with its .sig, in name order.
GNU_LISTING = "".join(
    f'<a href="mailman-{v}.tgz">mailman-{v}.tgz</a>\n<a href="mailman-{v}.tgz.sig">mailman-{v}.tgz.sig</a>\n'
    for v in ("2.1.9", "2.1.38", "2.1.39", "2.1.40", "2.1.100")
) + '<a href="mailman-3.0.0.tar.gz">mailman-3.0.0.tar.gz</a>\n'
# As GitHub's tags page links each tag's archives.
TAGS_LISTING = "".join(
    f'<a href="/jaredmauch/mailman2-python3/archive/refs/tags/{tag}.zip">zip</a>\n'
    f'<a href="/jaredmauch/mailman2-python3/archive/refs/tags/{tag}.tar.gz">tar.gz</a>\n'
    for tag in ("v2.2.1", "v2.2.0", "2.1.0")
)


def test_newer_releases_in_debian_order_newest_first():
    newer = newer_releases(GNU_LISTING, GNU_REGEX, "2.1.39", "https://ftp.gnu.org/gnu/mailman/")
    # 2.1.100 > 2.1.40 > 2.1.39 > 2.1.9: not string order; each version once despite its .sig.
    assert newer == [
        Release("2.1.100", "https://ftp.gnu.org/gnu/mailman/mailman-2.1.100.tgz"),
        Release("2.1.40", "https://ftp.gnu.org/gnu/mailman/mailman-2.1.40.tgz"),
    ]


def test_no_newer_release():
    assert newer_releases(GNU_LISTING, GNU_REGEX, "2.1.100") == []
    assert newer_releases("", GNU_REGEX, "2.1.39") == []


def test_debian_ordering_of_pre_releases():
    listing = "pkg-1.0~rc1.tgz pkg-1.0.tgz pkg-1.0+really.tgz"
    assert [r.version for r in newer_releases(listing, r"pkg-([0-9][^ ]*)\.tgz", "1.0~rc1")] == ["1.0+really", "1.0"]


def test_catalogue_watch_regexes_find_their_releases():
    upstreams = read(DEFAULTS)["upstream"]
    samples = {"ftp.gnu.org": GNU_LISTING, "github.com": TAGS_LISTING}
    for name, entry in upstreams.items():
        watch = entry["watch"]
        assert re.compile(watch["regex"]).groups == 1, name
        listing = next(text for host, text in samples.items() if host in watch["url"])
        newer = newer_releases(listing, watch["regex"], "0", watch["url"])
        assert newer and all(re.fullmatch(r"[0-9]+(\.[0-9]+)+", r.version) for r in newer), name
        assert all(r.url.startswith("https://") for r in newer), name


def test_py3_fork_tags_page():
    watch = read(DEFAULTS)["upstream"]["mailman2-python3-b0de82e"]["watch"]
    assert newer_releases(TAGS_LISTING, watch["regex"], "2.2.0", watch["url"]) == [
        Release("2.2.1", "https://github.com/jaredmauch/mailman2-python3/archive/refs/tags/v2.2.1.tar.gz"),
    ]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def listing_server(tmp_path):
    """Fake listing pages on 127.0.0.1: /gnu/ (a newer release) and /tags (nothing newer)."""
    root = tmp_path / "www"
    (root / "gnu").mkdir(parents=True)
    (root / "gnu" / "index.html").write_text(GNU_LISTING)
    (root / "tags").write_text(TAGS_LISTING)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def use_catalogue(tmp_path, monkeypatch, watches: dict[str, tuple[str, str, str]]) -> None:
    """A catalogue of upstreams NAME = (version, watch url, regex)."""
    text = "".join(
        f'[upstream.{name}]\nversion = "{version}"\nwatch.url = "{url}"\nwatch.regex = \'{regex}\'\n\n'
        for name, (version, url, regex) in watches.items()
    )
    (tmp_path / "catalogue.toml").write_text(text)
    monkeypatch.setenv("MMDEB_CATALOGUE", str(tmp_path / "catalogue.toml"))


TAGS_REGEX = read(DEFAULTS)["upstream"]["mailman2-python3-b0de82e"]["watch"]["regex"]


def test_check_reports_each_upstream(tmp_path, monkeypatch, capsys, listing_server):
    use_catalogue(tmp_path, monkeypatch, {
        "gnu": ("2.1.39", f"{listing_server}/gnu/", GNU_REGEX),
        "fork": ("2.2.1", f"{listing_server}/tags", TAGS_REGEX),
    })
    assert main(["upstream", "check"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "fork  2.2.1  up to date",
        f"gnu  2.1.39  newer: 2.1.100 ({listing_server}/gnu/mailman-2.1.100.tgz); also 2.1.40",
    ]
    assert out.err == ""


def test_check_one_upstream(tmp_path, monkeypatch, capsys, listing_server):
    use_catalogue(tmp_path, monkeypatch, {
        "gnu": ("2.1.100", f"{listing_server}/gnu/", GNU_REGEX),
        "fork": ("2.2.1", "http://127.0.0.1:1/tags", TAGS_REGEX),
    })
    assert main(["upstream", "check", "gnu"]) == 0
    assert capsys.readouterr().out == "gnu  2.1.100  up to date\n"


def test_check_says_when_the_regex_finds_nothing(tmp_path, monkeypatch, capsys, listing_server):
    use_catalogue(tmp_path, monkeypatch, {"gnu": ("2.1.39", f"{listing_server}/tags", GNU_REGEX)})
    assert main(["upstream", "check"]) == 0
    assert "no release found at" in capsys.readouterr().out


def test_check_offline_is_one_error_line(tmp_path, monkeypatch, capsys):
    use_catalogue(tmp_path, monkeypatch, {"gnu": ("2.1.39", "http://127.0.0.1:1/gnu/", GNU_REGEX)})
    assert main(["upstream", "check"]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    (line,) = out.err.splitlines()
    assert line.startswith("mmdeb: error: cannot check for newer releases of gnu: ")
    assert "http://127.0.0.1:1/gnu/ is unreachable" in line and "Fix: " in line


def test_check_reports_what_it_could_before_failing(tmp_path, monkeypatch, capsys, listing_server):
    use_catalogue(tmp_path, monkeypatch, {
        "gnu": ("2.1.39", "http://127.0.0.1:1/gnu/", GNU_REGEX),
        "fork": ("2.2.0", f"{listing_server}/tags", TAGS_REGEX),
    })
    assert main(["upstream", "check"]) == 1
    out = capsys.readouterr()
    assert out.out.startswith("fork  2.2.0  newer: 2.2.1 ")
    assert len(out.err.splitlines()) == 1 and "gnu: its listing http://127.0.0.1:1/gnu/" in out.err


def test_one_unreachable_upstream_is_named_and_those_after_it_are_checked(tmp_path, monkeypatch, capsys, listing_server):
    use_catalogue(tmp_path, monkeypatch, {
        "fork": ("2.2.0", "http://127.0.0.1:1/tags", TAGS_REGEX),  # checked first, and unreachable
        "gnu": ("2.1.39", f"{listing_server}/gnu/", GNU_REGEX),
        "mirror": ("2.1.100", f"{listing_server}/gnu/", GNU_REGEX),
    })
    assert main(["upstream", "check"]) == 1
    out = capsys.readouterr()
    assert [line.split("  ")[0] for line in out.out.splitlines()] == ["gnu", "mirror"]
    (line,) = out.err.splitlines()
    assert "fork: its listing http://127.0.0.1:1/tags is unreachable" in line and "gnu" not in line


def test_check_unknown_upstream(tmp_path, monkeypatch, capsys):
    use_catalogue(tmp_path, monkeypatch, {"gnu": ("2.1.39", "http://127.0.0.1:1/", GNU_REGEX)})
    assert main(["upstream", "check", "mailman-9"]) == 1
    assert "unknown upstream 'mailman-9'" in capsys.readouterr().err
