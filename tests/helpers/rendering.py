"""A domain package's debian/ rendered from a spec, without building."""

from dataclasses import replace

from mmdeb.build.render import render_debian
from mmdeb.build.spec import ChangelogEntry, PackageSpec
from mmdeb.domains.domain import Domain
from mmdeb.upstream.tarball import resolve


def rendered(tmp_path, upstream, **settings):
    spec = PackageSpec(Domain.parse("lists.example.org"), resolve(str(upstream.tarball)), upstream.dist, upstream.patches, **settings)
    spec = replace(spec, changelog=(ChangelogEntry(spec.version, spec.dist, "medium", 1_700_000_000, "Test build."),))
    render_debian(spec, tmp_path / "debian")
    return spec, tmp_path / "debian"
