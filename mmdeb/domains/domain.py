"""Domain names: validation, normalisation and the names derived from them."""

import re
from dataclasses import dataclass

from mmdeb.domains.layout import CORE_PACKAGE_PREFIX, DomainPaths
from mmdeb.errors import MmdebError

MAX_DOMAIN_LENGTH = 253
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Domain(DomainPaths):
    """name: the lower-case A-label form, e.g. lists.example.org. Its package and paths: DomainPaths."""

    @classmethod
    def parse(cls, raw: str) -> "Domain":
        return cls(normalise(raw))

    @property
    def webroot(self) -> str:
        """What the web server shows of this domain over plain HTTP: certbot --webroot's ACME challenges."""
        return f"{self.prefix}/webroot"

    @property
    def ident(self) -> str:
        """The name with only letters, digits and underscores (Exim driver names, cron.d files)."""
        return self.name.replace(".", "_").replace("-", "_")


def core_package(flavour: str) -> str:
    """The shared-mode core package of a flavour, which its domains' packages depend on."""
    return f"{CORE_PACKAGE_PREFIX}{flavour}"


def normalise(raw: str) -> str:
    """Return the lower-case A-label of raw, or raise MmdebError saying why not."""
    shown = repr(raw if len(raw) <= 64 else raw[:60] + "...")
    remedy = "give a fully qualified domain name such as lists.example.org"
    name = raw.removesuffix(".")  # the root label of an absolute name
    if not name:
        raise MmdebError("the domain name is empty", remedy)
    if any(ch.isspace() for ch in name):
        raise MmdebError(f"domain {shown} contains white space", remedy)
    if "/" in name or "\\" in name or ".." in name:
        raise MmdebError(f"domain {shown} contains a path separator or '..'", remedy)
    if len(name) > MAX_DOMAIN_LENGTH:
        raise MmdebError(f"domain {shown} is {len(name)} characters long, over the limit of {MAX_DOMAIN_LENGTH}", remedy)
    name = name.lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise MmdebError(f"domain {shown} is not a valid internationalised domain name ({exc})", remedy)
    if len(name) > MAX_DOMAIN_LENGTH:
        raise MmdebError(f"domain {shown} is {len(name)} characters long, over the limit of {MAX_DOMAIN_LENGTH}", remedy)
    labels = name.split(".")
    if len(labels) < 2:
        raise MmdebError(f"domain {shown} is not fully qualified", remedy)
    bad = [label for label in labels if not LABEL.match(label)]
    if bad:
        raise MmdebError(
            f"domain {shown} has an invalid label {bad[0]!r} (letters, digits and inner hyphens only, 1-63 characters)",
            remedy,
        )
    return name
