"""A domain package's (or mailmen-common's) debian/ rendered from a spec, without building."""

from dataclasses import replace
from pathlib import Path

from mmdeb.build.pipeline import first_entry
from mmdeb.build.render import render_common, render_debian
from mmdeb.build.spec import CommonSpec, CoreSpec, PackageSpec
from mmdeb.domains.domain import Domain
from mmdeb.domains.layout import DOMAIN_POSTINST
from mmdeb.domains.settings import DomainSettings
from mmdeb.domains.state import ChangelogEntry
from mmdeb.upstream.catalogue import DEFAULTS, read
from mmdeb.upstream.tarball import describe


def rendered(tmp_path, upstream, domain="lists.example.org", **settings):
    described = describe(str(upstream.tarball), None, read(DEFAULTS), upstream.tarball.parent)
    spec = PackageSpec(Domain.parse(domain), described,
                       DomainSettings(str(upstream.tarball), upstream.flavour, upstream.dist, **settings), upstream.patches)
    spec = replace(spec, changelog=(ChangelogEntry(spec.version, spec.dist, "medium", 1_700_000_000, "Test build."),))
    render_debian(spec, tmp_path / "debian")
    return spec, tmp_path / "debian"


def rendered_core(tmp_path, upstream):
    """The core package's debian/ (shared mode) for upstream."""
    spec = CoreSpec(describe(str(upstream.tarball), None, read(DEFAULTS), upstream.tarball.parent), upstream.dist, upstream.patches,
                    mail_domain="lists.example.org")
    spec = replace(spec, changelog=(ChangelogEntry(spec.version, spec.dist, "medium", 1_700_000_000, "Test build."),))
    render_debian(spec, tmp_path / "debian")
    return spec, tmp_path / "debian"


def rendered_common(tmp_path, dist="trixie"):
    spec = CommonSpec(dist)
    render_common(replace(spec, changelog=(first_entry(spec),)), tmp_path / "debian")
    return spec, tmp_path / "debian"


def postinst_with_library(tmp_path, debian: Path) -> str:
    """A domain's rendered postinst with mailmen-common's functions (DOMAIN_POSTINST) in place of
    the lines that source them: the script as it runs, whole."""
    _, common = rendered_common(tmp_path / "common")
    sourcing = f"# shellcheck source={DOMAIN_POSTINST}\n. {DOMAIN_POSTINST}\n"
    postinst = (debian / "postinst").read_text()
    assert sourcing in postinst
    return postinst.replace(sourcing, (common / "domain-postinst").read_text())
