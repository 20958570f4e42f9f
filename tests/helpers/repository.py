"""The signed repository as a test host sees it, and a stand-in fix to publish through it."""

import shutil
from pathlib import Path

from helpers.e2e_host import Host


FIX_MARKER = "MMDEB_E2E_SECURITY_FIX = True"


def security_fix() -> str:
    """A stand-in fix: one line added after Mailman/Version.py's copyright line (both flavours)."""
    return (
        "Description: Stand-in for a security fix, to check that an upgrade brings it\n"
        "--- a/Mailman/Version.py\n"
        "+++ b/Mailman/Version.py\n"
        "@@ -1,2 +1,3 @@\n"
        " # Copyright (C) 1998-2018 by the Free Software Foundation, Inc.\n"
        f"+{FIX_MARKER}\n"
        " #\n"
    )


def add_fix(patches: Path, flavour: str) -> None:
    (patches / flavour / "e2e-security-fix.patch").write_text(security_fix())
    with open(patches / flavour / "series", "a") as series:
        series.write("e2e-security-fix.patch\n")


def serve(repo: Path, host: Host) -> None:
    """Copy the published tree to the host, as a web server would serve it, and apt-get update."""
    shutil.rmtree(host.root / "srv/repo", ignore_errors=True)
    shutil.copytree((repo / "current").resolve(), host.root / "srv/repo")
    # Only our repository is reachable in the namespace; dependencies are already in the host.
    host.run("apt-get", "-o", "APT::Sandbox::User=root", "update")
