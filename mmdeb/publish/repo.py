"""The local signed apt repository: reprepro, one suite per distribution, atomic publishes.

Layout under the repository directory R:
  R/current -> snapshots/N   the published tree: serve R/current (or use file:R/current)
  R/snapshots/N/             conf/, db/, dists/, pool/, mmdeb-archive-keyring.gpg
The private signing key is in a GnuPG home outside R (Places.signing_key, beside R), so a copy
of R to a web host never carries it; a repository whose key is still in R/gnupg (where earlier
mmdeb kept it) has it moved out by its next publish.
A publish copies the current snapshot (pool files hard-linked), runs reprepro on the copy
and only then points `current` at it, so a failure leaves the published state as it was.
"""

import fcntl
import os
import shutil
import socket
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from mmdeb.errors import MmdebError
from mmdeb.build.pipeline import host_arch
from mmdeb.run import CommandFailed, Runner, require
from mmdeb.upstream.dists import DIST_RELEASES

KEYRING = "mmdeb-archive-keyring.gpg"
COMPONENT = "main"
OLD_GNUPGHOME = "gnupg"  # where the key was, inside the repository directory


def gpg_generate_key_argv(gnupghome: Path, uid: str) -> list[str]:
    return ["gpg", "--homedir", str(gnupghome), "--batch", "--passphrase", "",
            "--quick-generate-key", uid, "ed25519", "sign", "never"]


def gpg_list_secret_keys_argv(gnupghome: Path) -> list[str]:
    return ["gpg", "--homedir", str(gnupghome), "--batch", "--with-colons", "--list-secret-keys"]


def gpg_export_argv(gnupghome: Path, fingerprint: str, target: Path) -> list[str]:
    return ["gpg", "--homedir", str(gnupghome), "--batch", "--yes", "--output", str(target), "--export", fingerprint]


def gpgconf_kill_agent_argv(gnupghome: Path) -> list[str]:
    return ["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"]


def reprepro_argv(basedir: Path, *command: str) -> list[str]:
    return ["reprepro", "--basedir", str(basedir), "--waitforlock", "60", "--silent", *command]


def deb_architecture(deb: Path) -> str:
    return deb.stem.rsplit("_", 1)[-1]  # NAME_VERSION_ARCH.deb


def published_architectures(conf: str) -> set[str]:
    """The binary architectures a conf/distributions lists."""
    return {arch for line in conf.splitlines() if line.startswith("Architectures:")
            for arch in line.split()[1:] if arch != "source"}


def repository_architectures(debs: list[Path], previous: set[str], host: str) -> list[str]:
    """What is published now (Architecture: all alone: the host's), and every architecture a
    previous publish had: a dropped one would remove its packages from the repository."""
    built = {deb_architecture(deb) for deb in debs} - {"all"}
    return sorted((built or {host}) | previous)


def distributions_conf(fingerprint: str, architectures: list[str]) -> str:
    stanzas = [
        f"Origin: mmdeb\nLabel: mmdeb\nCodename: {dist}\nArchitectures: {' '.join(architectures)} source\n"
        f"Components: {COMPONENT}\nDescription: Mailman per domain, built by mmdeb\nSignWith: {fingerprint}\n"
        for dist in DIST_RELEASES
    ]
    return "\n".join(stanzas)


def link_pool_copy_rest(source: str, target: str) -> None:
    """Pool files never change once added, so snapshots share them; reprepro rewrites
    its database in place, so each snapshot needs its own copy of everything else."""
    if "/pool/" in source:
        os.link(source, target)
    else:
        shutil.copy2(source, target)


class Repository:
    def __init__(self, root: Path, gnupghome: Path, runner: Runner):
        self.root = root.resolve()
        self.gnupghome = gnupghome.resolve()
        self.runner = runner

    @property
    def current(self) -> Path:
        return self.root / "current"

    @contextmanager
    def lock(self):
        """Concurrent publishes wait for each other instead of racing on `current`."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def move_old_key(self, say: Callable[[str], None]) -> None:
        """Move a signing key kept inside the repository (R/gnupg) to gnupghome: moved, not
        copied, so no copy of the private key stays in R; the key, so what hosts trust, is the same."""
        old = self.root / OLD_GNUPGHOME
        if not old.is_dir():
            return
        if self.gnupghome.exists():
            raise MmdebError(f"{old} and {self.gnupghome} both hold a signing key of {self.root}",
                             f"keep the one whose fingerprint is in the SignWith lines of {self.current}/conf/distributions "
                             f"at {self.gnupghome}, and move the other out of {self.root}")
        # The agent of the old home would hold its sockets there, and keep the key it read.
        self.runner.run(gpgconf_kill_agent_argv(old), what=f"stopping the gpg-agent of {old}")
        self.gnupghome.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.move(old, self.gnupghome)
        except OSError as exc:
            raise MmdebError(f"cannot move the signing key from {old} to {self.gnupghome} ({exc})",
                             f"move it by hand (mv {old} {self.gnupghome}), then publish again")
        self.gnupghome.chmod(0o700)
        say(f"moved the signing key of {self.root} from {old} to {self.gnupghome}: the same key, "
            "now outside the directory you publish")

    def fingerprint(self) -> str:
        """The signing key; created on first use, refused if a published repository lost it."""
        require("gpg", "gnupg")
        env = {"GNUPGHOME": str(self.gnupghome)}
        if not self.gnupghome.exists():
            if self.current.exists():
                raise MmdebError(
                    f"the signing key of {self.root} is missing ({self.gnupghome})",
                    "restore that directory from backup; a new key would make every host refuse the repository",
                )
            self.gnupghome.mkdir(mode=0o700, parents=True)
            self.runner.run(gpg_generate_key_argv(self.gnupghome, f"mmdeb repository on {socket.getfqdn()}"), env=env,
                            what=f"making the signing key in {self.gnupghome} with gpg")
        listing = self.runner.run(gpg_list_secret_keys_argv(self.gnupghome), env=env,
                                  what=f"reading the signing key in {self.gnupghome} with gpg")
        fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
        if not fingerprints:
            raise MmdebError(f"{self.gnupghome} holds no secret key", "restore the repository's signing key from backup")
        return fingerprints[0]

    def publish(self, packages: dict[str, list[Path]], say: Callable[[str], None]) -> Path:
        """Add {dist: [.dsc and .deb files]} to a copy of the repository, then make it current."""
        require("reprepro", "reprepro")
        require("gpg", "gnupg")
        with self.lock():
            self.move_old_key(say)
            fingerprint = self.fingerprint()
            snapshots = self.root / "snapshots"
            snapshots.mkdir(exist_ok=True)
            numbers = [int(p.name) for p in snapshots.iterdir() if p.name.isdigit()]
            staging = snapshots / str(max(numbers, default=0) + 1)
            try:
                if self.current.exists():
                    shutil.copytree(self.current.resolve(), staging, copy_function=link_pool_copy_rest, symlinks=True)
                self.fill(staging, fingerprint, packages)
            except (MmdebError, OSError) as exc:
                shutil.rmtree(staging, ignore_errors=True)
                if isinstance(exc, MmdebError):
                    raise
                raise MmdebError(f"publishing to {self.root} failed ({exc}); the published repository is unchanged",
                                 f"make {self.root} writable and publish again")
            previous = self.current.resolve() if self.current.exists() else None
            link = self.root / ".current.new"
            link.unlink(missing_ok=True)
            link.symlink_to(staging.relative_to(self.root))
            os.replace(link, self.current)
            for old in snapshots.iterdir():  # keep the new snapshot and the one before it
                if old not in (staging, previous):
                    shutil.rmtree(old, ignore_errors=True)
            return self.current

    def fill(self, tree: Path, fingerprint: str, packages: dict[str, list[Path]]) -> None:
        conf = tree / "conf/distributions"
        conf.parent.mkdir(parents=True, exist_ok=True)
        previous = published_architectures(conf.read_text()) if conf.exists() else set()
        debs = [path for files in packages.values() for path in files if path.suffix == ".deb"]
        conf.write_text(distributions_conf(fingerprint, repository_architectures(debs, previous, host_arch(self.runner))))
        env = {"GNUPGHOME": str(self.gnupghome)}
        try:
            for dist, files in packages.items():
                for dsc in (f for f in files if f.suffix == ".dsc"):
                    self.runner.run(reprepro_argv(tree, "includedsc", dist, str(dsc)), env=env,
                                    what=f"adding {dsc.name} to {dist} with reprepro")
                for deb in (f for f in files if f.suffix == ".deb"):
                    self.runner.run(reprepro_argv(tree, "includedeb", dist, str(deb)), env=env,
                                    what=f"adding {deb.name} to {dist} with reprepro")
            self.runner.run(reprepro_argv(tree, "export"), env=env, what="exporting the repository's indexes with reprepro")
            self.runner.run(gpg_export_argv(self.gnupghome, fingerprint, tree / KEYRING), env=env,
                            what=f"exporting the signing key to {KEYRING} with gpg")
        except CommandFailed as exc:
            raise MmdebError(f"{exc.message}; the published repository is unchanged", "correct that, then publish again")


def sources_stanza(repository: Path, dists: list[str]) -> str:
    return (
        "Types: deb\n"
        f"URIs: file:{repository}\n"
        f"Suites: {' '.join(dists)}\n"
        f"Components: {COMPONENT}\n"
        f"Signed-By: /usr/share/keyrings/{KEYRING}\n"
    )
