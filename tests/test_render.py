import re
import subprocess
from dataclasses import replace

import pytest
from debian.changelog import Changelog
from debian.deb822 import Deb822

from mmdeb.build.render import IMPORTER_MODULES, render_debian
from mmdeb.build.spec import CoreSpec
from mmdeb.domains.state import ChangelogEntry
from mmdeb.upstream.catalogue import DEFAULTS, read
from mmdeb.upstream.tarball import describe

from helpers.rendering import rendered


def test_core_rules_have_no_units(tmp_path, upstream):
    # rules.j2 is shared; the units and timers are the domain packages'.
    spec = CoreSpec(describe(str(upstream.tarball), None, read(DEFAULTS), upstream.tarball.parent), upstream.dist, upstream.patches, mail_domain="lists.example.org")
    spec = replace(spec, changelog=(ChangelogEntry(spec.version, spec.dist, "medium", 1_700_000_000, "Test build."),))
    render_debian(spec, tmp_path / "debian")
    assert "dh_installsystemd" not in (tmp_path / "debian/rules").read_text()


def test_control_names_the_domain_package(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    source, binary = Deb822.iter_paragraphs((debian / "control").read_text())
    assert source["Source"] == binary["Package"] == "mailman-lists.example.org"
    assert "debhelper-compat (= 13)" in source["Build-Depends"]
    for dependency in spec.depends:
        assert dependency in binary["Depends"]


def test_changelog_written_with_python_debian(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    changelog = Changelog((debian / "changelog").read_text())
    assert changelog.package == "mailman-lists.example.org"
    assert str(changelog.version) == spec.version
    assert spec.version.startswith(f"{spec.upstream.version}-1+deb")
    assert changelog.distributions == spec.dist
    assert changelog.date == "Tue, 14 Nov 2023 22:13:20 +0000"


def test_rules_configure_options(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    rules = (debian / "rules").read_text()
    for option in (
        "--prefix=/var/lib/mailmen/lists.example.org",
        f"--with-python={spec.flavour.python}",
        "--with-username=list",
        "--with-groupname=list",
        "--with-mail-gid=daemon",
        "--with-cgi-gid=www-data",
        "--with-mailhost=lists.example.org",
        "--with-urlhost=lists.example.org",
        "--without-permcheck",
    ):
        assert option in rules
    assert re.search(r"^PREFIX = /var/lib/mailmen/lists.example.org$", rules, re.M)
    assert (debian / "rules").stat().st_mode & 0o111


def test_mail_and_cgi_gid_configurable(tmp_path, upstream):
    _, debian = rendered(tmp_path, upstream, mail_gid="mail", cgi_gid="apache")
    rules = (debian / "rules").read_text()
    assert "--with-mail-gid=mail" in rules and "--with-cgi-gid=apache" in rules


def test_patch_series_copied(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    series_file = upstream.patches / spec.flavour.name / "series"
    listed = [line for line in series_file.read_text().splitlines() if line and not line.startswith("#")]
    if listed:
        assert (debian / "patches" / "series").read_text().split() == listed
        assert all((debian / "patches" / name).is_file() for name in listed)
    else:
        assert not (debian / "patches").exists()


def test_gnu_installs_vendored_dnspython(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    rules = (debian / "rules").read_text()
    if spec.flavour.name == "gnu":
        assert "export PYTHONPATH := $(CURDIR)/dnspython" in rules
        assert "cp -r dnspython/dns $(DESTDIR)$(PREFIX)/pythonlib/" in rules
    else:
        assert "PYTHONPATH" not in rules


def test_domain_packages_carry_the_importer(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    assert sorted(str(path.relative_to(debian / "mmdeb")) for path in (debian / "mmdeb").rglob("*.py")) == sorted(IMPORTER_MODULES)
    launcher = (debian / "mmdeb-import").read_text()
    assert launcher.startswith("#!/usr/bin/python3\n") and (debian / "mmdeb-import").stat().st_mode & 0o111
    if spec.flavour.name == "gnu":  # GNU 2.1 runs on Python 2: the importer drives its scripts
        assert f'main(python2="/usr/bin/python2.7", prefix="{spec.prefix}")' in launcher
    else:  # the fork's python3 imports this domain's Mailman
        assert "import paths" in launcher and "main()" in launcher


def test_apache_serves_mailman_over_https_with_the_debconf_certificate(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    https = (debian / "apache.conf").read_text().split("<VirtualHost *:443>")[1]
    assert f"Include /etc/mailmen/{spec.domain.name}/apache-tls.conf" in https
    assert f"ScriptAlias /mailman/ {spec.domain.prefix}/cgi-bin/" in https


def test_apache_redirects_http_to_https_except_acme_challenges(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    http = (debian / "apache.conf").read_text().split("<VirtualHost *:80>")[1].split("</VirtualHost>")[0]
    pattern, target = re.search(r"RedirectMatch permanent (\S+) (\S+)", http).groups()
    redirected = {path: re.sub(pattern, target.replace("$1", r"\1"), path) if re.match(pattern, path) else None
                  for path in ("/mailman/listinfo", "/", "/.well-known/acme-challenge/token")}
    assert redirected == {"/mailman/listinfo": f"https://{spec.domain.name}/mailman/listinfo",
                          "/": f"https://{spec.domain.name}/", "/.well-known/acme-challenge/token": None}
    assert f"Alias /.well-known/acme-challenge/ {spec.domain.webroot}/.well-known/acme-challenge/" in http


def test_mailman_makes_https_urls(tmp_path, upstream):
    _, debian = rendered(tmp_path, upstream)
    assert "DEFAULT_URL_PATTERN = 'https://%s/mailman/'" in (debian / "mm_cfg.py").read_text()


@pytest.mark.parametrize("mode", ["prefix", "shared"])
def test_maintainer_scripts_are_valid_shell(tmp_path, upstream, mode):
    _, debian = rendered(tmp_path, upstream, mode=mode)
    for script in (path for path in ("preinst", "postinst", "prerm", "postrm", "config") if (debian / path).exists()):
        checked = subprocess.run(["sh", "-n", str(debian / script)], capture_output=True, text=True)
        assert checked.returncode == 0, f"{script}: {checked.stderr}"


def test_nginx_runs_only_mailmans_cgi_programs_through_fcgiwrap(tmp_path, upstream):
    spec, debian = rendered(tmp_path, upstream)
    nginx = (debian / "nginx.conf").read_text()
    pattern = re.search(r"location ~ (\S+) \{", nginx).group(1).replace("(?<", "(?P<")  # nginx's PCRE, in Python
    runs = {path: bool(re.match(pattern, path)) for path in
            ("/mailman/listinfo", "/mailman/listinfo/users", "/cgi-bin/mailman/admin/users/general", "/mailman/../bin/newlist",
             "/mailman/mailman.py")}
    assert runs == {"/mailman/listinfo": True, "/mailman/listinfo/users": True, "/cgi-bin/mailman/admin/users/general": True,
                    "/mailman/../bin/newlist": False, "/mailman/mailman.py": False}
    assert f"include {spec.domain.nginx_tls_conf};" in nginx and "fastcgi_pass unix:/run/fcgiwrap.socket;" in nginx
    assert f"alias {spec.domain.prefix}/archives/public/;" in nginx and "archives/private" not in nginx


def test_mmdeb_own_templates_are_never_part_of_a_mailman_package():
    from mmdeb.build.render import environment, templates_for

    names = environment().list_templates()
    assert any(name.startswith("self/") for name in names)
    for kind in ("domain", "core"):
        assert not any(name.startswith("self/") or target.startswith("self/")
                       for name, target in templates_for(kind, names).items())
    # So the rebuild digests of domain and core packages are what they were before self/ existed.
    from mmdeb.plan.rebuild import digest_templates
    import hashlib
    from mmdeb import TEMPLATES_DIR
    for kind in ("domain", "core"):
        without_self = [name for name in names if not name.startswith("self/")]
        digest = hashlib.sha256()
        for name in sorted(templates_for(kind, without_self)):
            digest.update(name.encode() + b"\0" + (TEMPLATES_DIR / name).read_bytes() + b"\0")
        assert digest_templates(kind) == digest.hexdigest()
    assert set(templates_for("self", names).values()) >= {"control.j2", "rules.j2", "copyright.j2", "source/format"}


def test_mmdeb_own_debian_dir(tmp_path):
    from mmdeb import PROJECT_ROOT
    from mmdeb.build.selfpackage import project_version, render_self, self_spec

    spec = self_spec(PROJECT_ROOT, "trixie")
    render_self(spec, PROJECT_ROOT / "debian-templates", tmp_path / "debian")
    debian = tmp_path / "debian"
    source, binary = Deb822.iter_paragraphs((debian / "control").read_text())
    assert source["Source"] == binary["Package"] == "mmdeb"
    assert (source["Section"], binary["Architecture"]) == ("admin", "all")
    for dependency in ("debhelper-compat (= 13)", "dh-python", "pybuild-plugin-pyproject", "python3-all",
                       "python3-setuptools", "python3-argparse-manpage", "python3-shtab", "python3-sh (>= 2.0)"):
        assert dependency in source["Build-Depends"]
    for dependency in ("${misc:Depends}", "${python3:Depends}", "python3-debian", "python3-jinja2",
                       "python3-sh (>= 2.0)", "python3-tomli-w", "sbuild", "mmdebstrap", "reprepro", "uidmap"):
        assert dependency in binary["Depends"]
    assert (debian / "source/format").read_text() == "3.0 (native)\n"
    changelog = Changelog((debian / "changelog").read_text())
    assert (changelog.package, str(changelog.version), changelog.distributions) == ("mmdeb", project_version(PROJECT_ROOT), "trixie")
    rules = debian / "rules"
    assert rules.stat().st_mode & 0o777 == 0o755
    assert "dh $@ --with python3 --buildsystem=pybuild" in rules.read_text()
    assert "--name=mmdeb-autorebuild" in rules.read_text()
    service = (debian / "mmdeb.mmdeb-autorebuild.service").read_text()
    assert "Type=oneshot" in service and "ExecStart=/usr/bin/mmdeb autorebuild" in service
    timer = (debian / "mmdeb.mmdeb-autorebuild.timer").read_text()
    assert "Persistent=true" in timer and "RandomizedDelaySec=" in timer
    assert "[ -d /run/systemd/system ] ||" in (debian / "mmdeb.cron.d").read_text()
    assert "etc/mmdeb.conf etc/mmdeb" in (debian / "mmdeb.install").read_text().splitlines()


def fake_pythons(bin_dir, log, failing=""):
    """python3 and python2.7 that log their arguments; failing is one that also fails, saying why."""
    bin_dir.mkdir()
    for name in ("python3", "python2.7"):
        fail = 'echo "*** Error compiling" >&2; exit 1' if name == failing else "exit 0"
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{fail}\n')
        (bin_dir / name).chmod(0o755)


def run_compile_bytecode(tmp_path, postinst: str, failing=""):
    # The function as postinst defines it, run alone: postinst itself needs debconf.
    function = re.search(r"^compile_bytecode\(\) \{\n.*?^\}\n", postinst, re.M | re.S).group()
    log = tmp_path / "calls"
    fake_pythons(tmp_path / f"bin{failing}", log, failing)
    done = subprocess.run(["sh", "-ec", f"PREFIX=/p\n{function}compile_bytecode"], capture_output=True, text=True,
                          env={"PATH": f"{tmp_path / f'bin{failing}'}:/usr/bin:/bin"})
    calls = log.read_text().splitlines()
    log.unlink()
    return done, calls


@pytest.mark.parametrize("mode", ["prefix", "shared"])
def test_postinst_compiles_mailman_with_its_python_and_the_importer_with_python3(tmp_path, upstream, mode):
    # GNU 2.1's python2.7 cannot compile the importer (Python 3); a failure is not hidden.
    spec, debian = rendered(tmp_path, upstream, mode=mode)
    postinst = (debian / "postinst").read_text()
    done, calls = run_compile_bytecode(tmp_path, postinst)
    python = spec.flavour.python_command
    assert (done.returncode, calls) == (0, [f"{python} -m compileall -q -x /pythonlib/mmdeb/ /p/Mailman /p/pythonlib",
                                            "python3 -m compileall -q /p/pythonlib/mmdeb"])
    for failing in {python, "python3"}:
        done, _ = run_compile_bytecode(tmp_path, postinst, failing)
        assert (done.returncode, done.stderr) == (1, "*** Error compiling\n")


def test_core_postinst_shows_compile_errors(tmp_path, upstream):
    spec = CoreSpec(describe(str(upstream.tarball), None, read(DEFAULTS), upstream.tarball.parent), upstream.dist, upstream.patches, mail_domain="lists.example.org")
    spec = replace(spec, changelog=(ChangelogEntry(spec.version, spec.dist, "medium", 1_700_000_000, "Test build."),))
    render_debian(spec, tmp_path / "debian")
    (line,) = [line for line in (tmp_path / "debian/postinst").read_text().splitlines() if "compileall" in line]
    assert line.strip() == f"{spec.flavour.python_command} -m compileall -q {spec.prefix}/Mailman {spec.prefix}/pythonlib"
