import grp
import os
import pwd
import re
import stat
import subprocess
from dataclasses import replace

import pytest
from debian.changelog import Changelog
from debian.deb822 import Deb822

from mmdeb import PROJECT_ROOT, TEMPLATES_DIR
from mmdeb.build.pipeline import first_entry
from mmdeb.build.render import IMPORTER_MODULES, IMPORTER_PATH, render_common
from mmdeb.build.selfpackage import render_self, self_spec
from mmdeb.build.spec import CommonSpec
from mmdeb.domains.layout import DKIM_SIGNER, PRIVATE_ARCHIVES, PRIVATE_ARCHIVES_MODE, SYSV_SCRIPT, WEB_SERVER_USER
from mmdeb.upstream.dists import FLAVOURS, PYTHON_SUBSTVARS

from helpers.rendering import postinst_with_library, rendered, rendered_common, rendered_core


def test_core_rules_have_no_units(tmp_path, upstream):
    # rules.j2 is shared; the units and timers are the domain packages'.
    _, debian = rendered_core(tmp_path, upstream)
    assert "dh_installsystemd" not in (debian / "rules").read_text()


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


def shell_scripts(debian) -> set[str]:
    """Every shell script in a rendered debian/ (maintainer scripts, init scripts, helpers), by name."""
    return {str(path.relative_to(debian)) for path in debian.rglob("*")
            if path.is_file() and "patches" not in path.relative_to(debian).parts and path.read_bytes().startswith(b"#!/bin/sh")}


def render_package(kind: str, directory, upstream):
    """The debian/ of a package kind (a domain's is "<mode> <runners>"), and the shell scripts it must have."""
    if kind == "common":
        spec = CommonSpec("trixie")
        render_common(replace(spec, changelog=(first_entry(spec),)), directory / "debian")
        return directory / "debian", {"postinst", "prerm", "postrm", f"mailmen-common.{DKIM_SIGNER}.init",
                                      f"mailmen-common.{SYSV_SCRIPT}.init", "mailmen-jobs", "mailmen-hookup"}
    if kind == "self":
        render_self(self_spec(PROJECT_ROOT, "trixie"), TEMPLATES_DIR, directory / "debian")
        return directory / "debian", {"mmdeb.postinst", "mmdeb.postrm"}
    mode, runners = kind.split()
    # A dash: systemd escapes it in unit names (\x2d), which the scripts must quote.
    spec, debian = rendered(directory, upstream, "lists-1.example.org", mode=mode, runners=runners)
    return debian, {"preinst", "postinst", "prerm", "postrm", "config", "mmdeb-shared-domain",
                    *(["mmdeb-configure"] if mode == "shared" else [])}


# The core has none (test_core_byte_code_is_dh_pythons_and_it_has_no_maintainer_script_of_its_own).
@pytest.mark.parametrize("kind", [f"{mode} {runners}" for mode in ("prefix", "shared") for runners in ("on-demand", "always-on")]
                         + ["common", "self"])
def test_rendered_shell_scripts_pass_shellcheck(tmp_path, upstream, kind):
    debian, expected = render_package(kind, tmp_path, upstream)
    scripts = shell_scripts(debian)
    assert scripts == expected
    if "postinst" in scripts and kind not in ("common", "self"):  # checked with the functions it sources
        (debian / "postinst").write_text(postinst_with_library(tmp_path, debian))
    # As dash runs them. SC1091: what they source (debconf's confmodule, lsb's init-functions,
    # apache2's helper) is other packages' and not followed.
    checked = subprocess.run(["shellcheck", "--shell=sh", "--exclude=SC1091", *sorted(scripts)], cwd=debian,
                             capture_output=True, text=True)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


@pytest.mark.parametrize("mode", ("prefix", "shared"))
def test_a_domains_postinst_reads_top_to_bottom_in_under_150_lines(tmp_path, upstream, mode):
    # Its functions are mailmen-common's (DOMAIN_POSTINST): the postinst sets the domain's variables and calls them.
    _, debian = rendered(tmp_path, upstream, mode=mode)
    assert len((debian / "postinst").read_text().splitlines()) < 150


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_postinst_closes_private_archives_made_before_unless_the_admin_overrode_them(tmp_path):
    _, common = rendered_common(tmp_path / "common")
    opened, overridden = tmp_path / "opened", tmp_path / "overridden"
    for prefix in (opened, overridden):
        (prefix / PRIVATE_ARCHIVES).mkdir(parents=True)
        os.chown(prefix / PRIVATE_ARCHIVES, 0, grp.getgrnam("list").gr_gid)
        (prefix / PRIVATE_ARCHIVES).chmod(0o2771)  # as Mailman's make install and earlier packages left it
    statoverride = tmp_path / "bin/dpkg-statoverride"  # the admin's override of overridden's, as dpkg answers
    statoverride.parent.mkdir()
    statoverride.write_text(f'#!/bin/sh\n[ "$2" = "{overridden}/{PRIVATE_ARCHIVES}" ] && echo "root list 2771 $2"\n')
    statoverride.chmod(0o755)
    for prefix in (opened, overridden):
        subprocess.run(["sh", "-ec", f". {common}/domain-postinst; close_private_archives"], check=True,
                       env={"PREFIX": str(prefix), "PATH": f"{statoverride.parent}:{os.environ['PATH']}"})
    found = {prefix.name: (prefix / PRIVATE_ARCHIVES).stat() for prefix in (opened, overridden)}
    owned = {name: (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode))
             for name, st in found.items()}
    assert owned == {"opened": (WEB_SERVER_USER, "list", PRIVATE_ARCHIVES_MODE), "overridden": ("root", "list", 0o2771)}


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
    from mmdeb.build.render import with_includes
    import hashlib
    from mmdeb import TEMPLATES_DIR
    for kind in ("domain", "core"):
        without_self = [name for name in names if not name.startswith("self/")]
        digest = hashlib.sha256()
        for name in with_includes(templates_for(kind, without_self)):
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
                       "python3-sh (>= 2.0)", "python3-tomli-w", "sbuild", "mmdebstrap", "reprepro", "uidmap", "iproute2"):
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


@pytest.mark.parametrize("mode", ["prefix", "shared"])
def test_dh_python_byte_compiles_on_the_host_mailman_with_its_python_and_the_importer_with_python3(tmp_path, upstream, mode):
    # GNU 2.1's Python 2 cannot compile the importer (Python 3): pycompile leaves it to py3compile.
    # mm_cfg.py links to a conffile, missing when python3's runtime hook may run.
    spec, debian = rendered(tmp_path, upstream, mode=mode)
    rules = (debian / "rules").read_text()
    source, binary = Deb822.iter_paragraphs((debian / "control").read_text())
    depends = binary["Depends"]
    build_depends = {name: name in source["Build-Depends"] for name in ("dh-sequence-python2", "dh-sequence-python3")}
    (line,) = re.findall(rf"^\tdh_{spec.flavour.python_addon} \$\(PREFIX\)( .*)?$", rules, re.M)
    excluded = re.findall(r" -X '([^']*)'", line)
    not_compiled = {path for path in ("Mailman/mm_cfg.py", f"{IMPORTER_PATH}/importing/listimport.py", "Mailman/Utils.py",
                                      "pythonlib/dns/resolver.py")
                    if any(re.match(pattern, f"{spec.prefix}/{path}") for pattern in excluded)}
    if spec.flavour.name == "py3":
        assert build_depends == {"dh-sequence-python2": False, "dh-sequence-python3": True}
        assert not_compiled == {"Mailman/mm_cfg.py"}
        assert "${python3:Depends}" in depends and "${python:Depends}" not in depends
    else:
        assert build_depends == {"dh-sequence-python2": True, "dh-sequence-python3": True}
        assert f"\tdh_python3 $(PREFIX)/{IMPORTER_PATH}\n" in rules
        assert not_compiled == {"Mailman/mm_cfg.py", f"{IMPORTER_PATH}/importing/listimport.py"}
        assert "${python:Depends}, ${python3:Depends}" in depends
    for script in ("postinst", "prerm"):
        assert "compileall" not in (debian / script).read_text() and "py[co]" not in (debian / script).read_text()
    assert "py[co]" not in rules


def test_core_byte_code_is_dh_pythons_and_it_has_no_maintainer_script_of_its_own(tmp_path, upstream):
    _, debian = rendered_core(tmp_path, upstream)
    addon = FLAVOURS[upstream.flavour].python_addon
    rules = (debian / "rules").read_text()
    source, binary = Deb822.iter_paragraphs((debian / "control").read_text())
    assert f"dh-sequence-{addon}," in source["Build-Depends"] and f"\tdh_{addon} $(PREFIX)\n" in rules
    assert PYTHON_SUBSTVARS[addon] in binary["Depends"]
    assert not [name for name in ("preinst", "postinst", "prerm", "postrm") if (debian / name).exists()]


def dh_sequence(debian) -> list[str]:
    """The commands dh runs for the binary packages, overrides as `debian/rules override_...`;
    an empty override is left out, as dh skips it."""
    result = subprocess.run(["dh", "binary-arch", "--no-act"], cwd=debian.parent, capture_output=True, text=True, check=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def make_dry_run(debian, target: str) -> list[str]:
    """The commands debian/rules runs for target, as make prints them without running them."""
    result = subprocess.run(["make", "--dry-run", "--no-print-directory", "-f", "debian/rules", target],
                            cwd=debian.parent, capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


def test_thin_domain_packages_make_no_dbgsym(tmp_path, fixture_py3):
    """A -dbgsym package per shared-mode domain would be most of its bytes in the repository.
    py3's: dh reads every addon, and this host has no python2 one (bullseye's dh-python has)."""
    upstream = fixture_py3
    _, thin = rendered(tmp_path / "thin", upstream, mode="shared")
    sequence = dh_sequence(thin)
    assert "debian/rules override_dh_strip" in sequence and not [line for line in sequence if "dh_dwz" in line]
    assert make_dry_run(thin, "override_dh_strip") == ["dh_strip --no-automatic-dbgsym"]
    _, prefix = rendered(tmp_path / "prefix", upstream)
    assert {"dh_dwz -a", "dh_strip -a"} <= set(dh_sequence(prefix)), "a prefix-mode package keeps its dbgsym"
