"""The py3 fork configured for one domain and installed into a prefix on this host (configure,
make install; about a minute), with mmdeb-import's modules and launcher placed as the domain
packages place them, and optionally our patch series applied first. For the importer's and the
patches' tests and bench, which need the fork but no package."""

import grp
import os
import pickle
import pwd
import re
import shutil
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from mmdeb.plan.rebuild import patched_paths
from mmdeb.build.render import IMPORTER_MODULES, IMPORTER_PATH, IMPORTER_PYTHON, environment, importer_files, series_names
from mmdeb.upstream.dists import FLAVOURS

PYTHON = FLAVOURS["py3"].python


def apply_patch(tree: Path, patch: Path, reverse: bool = False) -> None:
    """As dpkg-source applies a quilt patch (no fuzz)."""
    subprocess.run(["patch", "-p1", "-F0", "-N", "-s", "--no-backup-if-mismatch", *(["-R"] if reverse else []),
                    "-d", str(tree), "-i", str(patch)], check=True)


def install_fork(tarball: Path, top: Path, domain: str, series_dir: Path | None = None) -> Path:
    """The prefix, under top, owned by the calling user (it runs Mailman's scripts); the patches
    of series_dir/series applied in order, if given."""
    with tarfile.open(tarball) as tar:
        tar.extractall(top / "src", filter="tar")
    (source,) = (top / "src").iterdir()
    for name in series_names(series_dir) if series_dir else ():
        apply_patch(source, series_dir / name)
    prefix = top / "prefix"
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    subprocess.run(["./configure", f"--prefix={prefix}", f"--with-python={PYTHON}", f"--with-username={user}",
                    f"--with-groupname={group}", f"--with-mail-gid={group}", f"--with-cgi-gid={group}",
                    f"--with-mailhost={domain}", f"--with-urlhost={domain}", "--without-permcheck"],
                   cwd=source, check=True, capture_output=True)
    subprocess.run(["make", "install"], cwd=source, check=True, capture_output=True)
    package = prefix / IMPORTER_PATH
    for name, path in zip(IMPORTER_MODULES, importer_files()):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, package / name)
    launcher = prefix / "bin/mmdeb-import"
    spec = SimpleNamespace(flavour=FLAVOURS["py3"], domain=SimpleNamespace(name=domain))
    launcher.write_text(environment().get_template("mmdeb-import.j2").render(spec=spec, mmdeb_version="test",
                                                                             importer_python=IMPORTER_PYTHON))
    launcher.chmod(0o755)
    return prefix


def patch_part(patch: Path, under: str, out: Path) -> Path:
    """out: the part of patch that changes files under a directory (e.g. Mailman/Handlers/)."""
    files = re.split(r"^(?=--- )", patch.read_text(), flags=re.M)[1:]
    out.write_text("".join(part for part in files if part.split("\n", 2)[1].startswith(f"+++ b/{under}")))
    return out


@contextmanager
def without_patch(prefix: Path, patch: Path):
    """The installed prefix with one patch of Mailman/ taken out (reverse-applied), then put back."""
    paths = patched_paths(patch.read_text())
    assert all(path.startswith("Mailman/") for path in paths), f"{patch.name} patches more than Mailman/"

    def apply(reverse: bool) -> None:
        apply_patch(prefix, patch, reverse)
        for path in paths:  # a .pyc of the same size and second would be taken as current
            stem = Path(path).stem
            for compiled in [*(prefix / path).parent.glob(f"__pycache__/{stem}.*.pyc"), *(prefix / path).parent.glob(f"{stem}.pyc")]:
                compiled.unlink()

    apply(reverse=True)
    try:
        yield
    finally:
        apply(reverse=False)


def fork_python(prefix: Path, code: str) -> str:
    """Run code with the fork's python3 and this prefix's Mailman, as its bin/ scripts do; its output."""
    done = subprocess.run([PYTHON, "-c", f"import sys; sys.path.insert(0, '{prefix}/bin'); import paths\n{code}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fork_script(prefix: Path, script: str, *args: str, stdin: str = "") -> None:
    """One of the prefix's bin/ scripts (or cron/ with "cron/..."), which must succeed."""
    path = prefix / (script if "/" in script else f"bin/{script}")
    done = subprocess.run([PYTHON, str(path), *args], input=stdin, capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def cgi_env(domain: str, script: str, path_info: str = "", query: str = "", body: bytes = b"",
            content_type: str | None = None) -> dict[str, str]:
    """The CGI variables a web server gives a Mailman CGI program: a GET, or a POST of body."""
    env = {"REQUEST_METHOD": "POST" if content_type else "GET", "PATH_INFO": path_info, "QUERY_STRING": query,
           "SERVER_NAME": domain, "HTTP_HOST": domain, "SERVER_PORT": "80", "SCRIPT_NAME": f"/mailman/{script}",
           "REMOTE_ADDR": "127.0.0.1"}
    if content_type:
        env.update(CONTENT_TYPE=content_type, CONTENT_LENGTH=str(len(body)))
    return env


def cgi_response(output: bytes) -> tuple[int, str]:
    """A CGI program's HTTP status and its page, decoded in the charset it names."""
    head, _, body = output.partition(b"\n\n")
    status = re.search(rb"^Status: (\d+)", head, re.M)
    charset = re.search(rb"charset=([\w-]+)", head)
    return int(status[1]) if status else 200, body.decode(charset[1].decode() if charset else "us-ascii")


def cgi_request(prefix: Path, domain: str, script: str, path_info: str = "", query: str = "", body: bytes = b"",
                content_type: str | None = None) -> tuple[int, str]:
    """The status and page a web server gets: the prefix's setgid CGI wrapper run with a GET
    request's CGI variables, or a POST's of body with content_type (the calling user's group is
    the CGI group)."""
    done = subprocess.run([str(prefix / "cgi-bin" / script)], env=cgi_env(domain, script, path_info, query, body, content_type),
                          input=body, capture_output=True, check=True)
    return cgi_response(done.stdout)


def cgi_page(prefix: Path, domain: str, script: str, path_info: str = "", query: str = "") -> str:
    """A GET's page."""
    return cgi_request(prefix, domain, script, path_info, query)[1]


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
