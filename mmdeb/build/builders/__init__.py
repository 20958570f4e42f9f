"""Builder backends: sbuild, pbuilder and local, behind one interface (base.Builder)."""

from mmdeb.build.builders.base import Builder
from mmdeb.build.builders.chroot import ChrootCache
from mmdeb.build.builders.local import LocalBuilder
from mmdeb.build.builders.pbuilder import PbuilderBuilder
from mmdeb.build.builders.sbuild import SbuildBuilder
from mmdeb.errors import MmdebError

BUILDERS = ("sbuild", "pbuilder", "local")


def get_builder(name: str, chroots: ChrootCache) -> Builder:
    """The builder called name; the chroot builders build in chroots."""
    if name not in BUILDERS:
        raise MmdebError(f"unknown builder {name!r}", f"use one of {', '.join(BUILDERS)}")
    if name == "local":
        return LocalBuilder()
    return {"sbuild": SbuildBuilder, "pbuilder": PbuilderBuilder}[name](chroots)
