"""The py3 fork configured for one domain and installed into a prefix on this host (configure,
make install; about a minute), with mmdeb-import's modules and launcher placed as the domain
packages place them. For the importer's tests and bench, which need the fork but no package."""

import grp
import os
import pickle
import pwd
import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

from mmdeb.render import environment, importer_files, series_names
from mmdeb.upstream import FLAVOURS

PYTHON = FLAVOURS["py3"].python


def install_fork(tarball: Path, top: Path, domain: str, series_dir: Path | None = None) -> Path:
    """The prefix, under top, owned by the calling user (it runs Mailman's scripts); with the patches
    of series_dir/series applied in quilt order, if given."""
    with tarfile.open(tarball) as tar:
        tar.extractall(top / "src", filter="tar")
    (source,) = (top / "src").iterdir()
    for name in series_names(series_dir) if series_dir else ():
        subprocess.run(["patch", "-p1", "-F0", "-s", "-i", str(series_dir / name)], cwd=source, check=True)
    prefix = top / "prefix"
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    subprocess.run(["./configure", f"--prefix={prefix}", f"--with-python={PYTHON}", f"--with-username={user}",
                    f"--with-groupname={group}", f"--with-mail-gid={group}", f"--with-cgi-gid={group}",
                    f"--with-mailhost={domain}", f"--with-urlhost={domain}", "--without-permcheck"],
                   cwd=source, check=True, capture_output=True)
    subprocess.run(["make", "install"], cwd=source, check=True, capture_output=True)
    package = prefix / "pythonlib/mmdeb"
    package.mkdir()
    for path in importer_files():
        shutil.copyfile(path, package / path.name)
    launcher = prefix / "bin/mmdeb-import"
    spec = SimpleNamespace(flavour=FLAVOURS["py3"], domain=SimpleNamespace(name=domain))
    launcher.write_text(environment().get_template("mmdeb-import.j2").render(spec=spec, mmdeb_version="test"))
    launcher.chmod(0o755)
    return prefix


def py2_form(value):
    """A value of a fork-written config as 2.1 would have pickled it (py2 str for str)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        return {py2_form(key): py2_form(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(py2_form(item) for item in value)
    return value


def skeleton_config(prefix: Path) -> dict:
    """Every attribute of a list's config.pck (a new list's, made by the fork's newlist), in py2 form."""
    subprocess.run([PYTHON, str(prefix / "bin/newlist"), "-q", "skeleton", "owner@example.org", "pw"],
                   check=True, capture_output=True)
    config = pickle.loads((prefix / "lists/skeleton/config.pck").read_bytes())
    subprocess.run([PYTHON, str(prefix / "bin/rmlist"), "-a", "skeleton"], check=True, capture_output=True)
    return py2_form(config)
