"""Many thin packages built in one unshared session of the cached chroot tarball.

sbuild unpacks and removes the chroot for each package, most of a thin package's build. A
session unpacks the tarball (which holds every build dependency, chroot.py) once, and runs
dpkg-buildpackage for each source package in its own directory, jobs at a time. As in sbuild's
unshare mode, the session has its own user, mount, pid, network (none), IPC and UTS
namespaces; in its chroot it sees of the host only the device nodes a build needs and the
session's build directory.
"""

import shutil
import threading
from pathlib import Path

from mmdeb.build.builders.base import Builder, built_package, listed
from mmdeb.errors import MmdebError
from mmdeb.run import Runner, require

BUILD_DIR = "/build"  # in the chroot: the session's build directory, one subdirectory per package
DEVICES = ("null", "zero", "full", "random", "urandom")
STATUS = "status"  # in a package's directory: dpkg-buildpackage's exit status
BUILD_LOG = "build.log"  # in a package's directory: its extraction and build
BUILD_USER = ("nobody", "nogroup")  # in every chroot (base-passwd)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# $1 tarball, $2 the session's directory (its build/ holds a directory per package), $3 jobs,
# $4 the build of one package, then the packages' directories. The chroot's mounts are made
# in a mount namespace of their own, gone when it ends, so the tree can be removed after.
SESSION_SCRIPT = r"""set -e
tarball=$1 session=$2 jobs=$3 build=$4
shift 4
root=$session/root
mkdir "$root"
tar --extract --zstd --file="$tarball" --directory="$root" --exclude='./dev/*'
status=0
unshare --mount sh -e -c '
	root=$1 session=$2 jobs=$3 build=$4
	shift 4
	for device in {devices}; do
		touch "$root/dev/$device"
		mount --bind "/dev/$device" "$root/dev/$device"
	done
	mount -t proc proc "$root/proc"
	mkdir -p "$root{build_dir}"
	mount --bind "$session/build" "$root{build_dir}"
	printf "%s\n" "$@" | chroot "$root" env -i PATH={path} HOME=/nonexistent LC_ALL=C.UTF-8 \
		xargs -P "$jobs" -n 1 sh -c "$build" build-one
' session "$root" "$session" "$jobs" "$build" "$@" || status=$?
rm -rf "$root"
exit $status
""".format(devices=" ".join(DEVICES), build_dir=BUILD_DIR, path=PATH)

# $1 a package's directory under BUILD_DIR, holding its .dsc and the files it lists. As with
# sbuild, the build runs as a user (BUILD_USER), its binary targets under fakeroot. Its status
# and log tell how it went (the session goes on with the others); then the directory, less the
# tree, is given back to the session's root, the user who runs mmdeb.
BUILD_SCRIPT = r"""set -e
cd "{build_dir}/$1"
chown -R {user} .
status=0
setpriv --reuid={uid} --regid={gid} --clear-groups sh -c \
	'dpkg-source --extract ./*.dsc tree && cd tree && dpkg-buildpackage --sanitize-env --build=binary --no-sign --root-command=fakeroot' \
	>{log} 2>&1 || status=$?
rm -rf tree
chown -R 0:0 .
echo $status >{status}
""".format(build_dir=BUILD_DIR, user=":".join(BUILD_USER), uid=BUILD_USER[0], gid=BUILD_USER[1], log=BUILD_LOG, status=STATUS)


def session_argv(tarball: Path, session: Path, jobs: int, packages: list[str]) -> list[str]:
    return ["unshare", "--user", "--map-root-user", "--map-auto", "--mount", "--pid", "--fork", "--kill-child",
            "--net", "--ipc", "--uts", "sh", "-c", SESSION_SCRIPT, "session", str(tarball), str(session), str(jobs),
            BUILD_SCRIPT, *packages]


class Session(Builder):
    """Builds the .dsc of each of count builds, each in its own thread calling build(), in one
    session of tarball: the last to call (or to withdraw) runs it; each gets its own result."""

    name = "session"

    def __init__(self, tarball: Path, count: int, jobs: int, directory: Path):
        self.tarball = tarball
        self.jobs = jobs
        self.directory = directory  # the session's directory, made and removed by the session's runner
        self.expected = count
        self.waiting: dict[str, tuple[Path, Path]] = {}  # package directory -> (dsc, its build's result_dir)
        self.failure: MmdebError | None = None
        self.done = False
        self.condition = threading.Condition()

    def check(self) -> None:
        require("unshare", "util-linux")

    def withdraw(self) -> None:
        """One of the builds ended before it had a .dsc: the others don't wait for it."""
        with self.condition:
            self.expected -= 1
            self.run_if_complete(None)

    def build(self, dsc: Path, dist: str, arch: str, result_dir: Path, runner: Runner) -> None:
        with self.condition:
            self.waiting[dsc.stem] = (dsc, result_dir)
            self.run_if_complete(runner)
            while not self.done:
                self.condition.wait()
        if self.failure:
            raise self.failure
        here = self.directory / "build" / dsc.stem
        if runner.log_path:
            with open(runner.log_path, "a", encoding="utf-8", errors="replace") as log:
                log.write((here / BUILD_LOG).read_text(errors="replace"))
        if (here / STATUS).read_text().strip() != "0":
            raise MmdebError(f"building {built_package(dsc)} in the build session failed: see {runner.log_path}",
                             "correct what the end of that log reports, then run again")
        package, version = built_package(dsc).split()
        changes = here / f"{dsc.stem}_{arch}.changes"
        remedy = "build it again; the end of its log says what went wrong"
        for artifact in [changes, *listed(changes, package, version, remedy)]:
            shutil.move(artifact, result_dir / artifact.name)

    def run_if_complete(self, runner: Runner | None) -> None:
        """Under the condition: once every build has called build() or withdrawn, run the session
        (with runner, that of the last to call, or a runner without log if it withdrew)."""
        if len(self.waiting) < self.expected or self.done:
            return
        try:
            if self.waiting:
                self.run((runner or Runner()))
        except MmdebError as exc:
            self.failure = exc
        finally:
            self.done = True
            self.condition.notify_all()

    def run(self, runner: Runner) -> None:
        build = self.directory / "build"
        for name, (dsc, _) in self.waiting.items():
            (build / name).mkdir(parents=True)
            package, version = built_package(dsc).split()
            for path in [dsc, *listed(dsc, package, version, "make its source package again")]:
                shutil.copy2(path, build / name / path.name)
        runner.run(session_argv(self.tarball, self.directory, self.jobs, sorted(self.waiting)),
                   what=f"building {len(self.waiting)} thin packages in one session of {self.tarball.name}")
