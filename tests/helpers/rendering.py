"""A domain package's debian/ rendered from a spec, without building."""

from dataclasses import replace

from mmdeb.build.render import render_debian
from mmdeb.build.spec import PackageSpec
from mmdeb.domains.domain import Domain
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
