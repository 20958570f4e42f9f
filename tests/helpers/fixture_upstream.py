"""A small generated stand-in for a Mailman 2 tarball, for CI, which has no real one.

It has what mmdeb's pipeline relies on: an autoconf-style configure that takes
Mailman's options (and, like Mailman's, refuses to run without dnspython), a
Makefile with `install DESTDIR=…` that works, as Mailman's, on the SUBDIRS it is given,
and a setgid C wrapper compiled with the prefix.
It tests the pipeline; it never stands in for Mailman.
"""

import io
import tarfile
from pathlib import Path

FIXTURE_MTIME = 1_700_000_000
FIXTURE_VERSIONS = {"py3": "2.2.0", "gnu": "2.1.39"}
PATCH_MARKER = "PATCHED_BY_MMDEB_FIXTURE_SERIES = True"

CONFIGURE = r"""#!/bin/sh
# mmdeb test fixture: takes Mailman 2's configure options and substitutes them.
set -e
configure_opts="$*"  # recorded, as Mailman's configure does in bin/mailman-config
prefix=/usr/local/mailman var_prefix= python=python3 username=mailman groupname=mailman
mail_gid=mailman cgi_gid=www-data mailhost=localhost urlhost=localhost
for arg; do
    case "$arg" in
        --prefix=*) prefix=${arg#*=} ;;
        --with-var-prefix=*) var_prefix=${arg#*=} ;;
        --with-python=*) python=${arg#*=} ;;
        --with-username=*) username=${arg#*=} ;;
        --with-groupname=*) groupname=${arg#*=} ;;
        --with-mail-gid=*) mail_gid=${arg#*=} ;;
        --with-cgi-gid=*) cgi_gid=${arg#*=} ;;
        --with-mailhost=*) mailhost=${arg#*=} ;;
        --with-urlhost=*) urlhost=${arg#*=} ;;
        --without-permcheck) ;;
        CFLAGS=*) CFLAGS=${arg#*=} ;;
        LDFLAGS=*) LDFLAGS=${arg#*=} ;;
        *) echo "configure: error: unrecognized option: $arg" >&2; exit 1 ;;
    esac
done
: "${var_prefix:=$prefix}"
if ! "$python" -c 'import dns.resolver' 2>/dev/null; then
    echo "configure: error: dnspython <2.0 not found for $python" >&2
    exit 1
fi
for f in Makefile Mailman/Defaults.py bin/newlist bin/mailmanctl bin/qrunner misc/paths.py; do
    sed -e "s|@prefix@|$prefix|g" -e "s|@VAR_PREFIX@|$var_prefix|g" -e "s|@PYTHON@|$python|g" \
        -e "s|@MAILMAN_USER@|$username|g" -e "s|@MAILMAN_GROUP@|$groupname|g" \
        -e "s|@MAIL_GROUP@|$mail_gid|g" -e "s|@CGI_GROUP@|$cgi_gid|g" \
        -e "s|@MAILHOST@|$mailhost|g" -e "s|@URLHOST@|$urlhost|g" \
        -e "s|@CFLAGS@|$CFLAGS|g" -e "s|@LDFLAGS@|$LDFLAGS|g" \
        -e "s|@CONFIGURE_OPTS@|$configure_opts|g" "$f.in" > "$f"
done
chmod 755 bin/newlist bin/mailmanctl bin/qrunner
echo "configure: prefix $prefix, python $python, mail gid $mail_gid, cgi gid $cgi_gid"
"""

# Like Mailman's: `make subdirs` and `make doinstall` work on each of SUBDIRS (here one install
# target each), so a shared-mode domain's package, which gives only its part, needs only their files.
MAKEFILE_IN = """\
prefix = @prefix@
var_prefix = @VAR_PREFIX@
PYTHON = @PYTHON@
DESTDIR =
CFLAGS = @CFLAGS@
LDFLAGS = @LDFLAGS@
WRAPPER = $(CC) $(CFLAGS) $(LDFLAGS) -DPREFIX='"$(prefix)"'
VAR_DIRS = logs archives/public archives/private lists locks data spam qfiles
SUBDIRS = bin cron misc Mailman scripts src templates

all: subdirs

subdirs: $(SUBDIRS:%=build-%)

build-src: src/mailman src/listinfo

build-bin build-cron build-misc build-Mailman build-scripts build-templates:

src/mailman: src/wrapper.c
\t$(WRAPPER) -DGROUP='"@MAIL_GROUP@"' -o $@ src/wrapper.c

src/listinfo: src/wrapper.c
\t$(WRAPPER) -DGROUP='"@CGI_GROUP@"' -o $@ src/wrapper.c

install: doinstall

doinstall: subdirs
\tmkdir -p $(DESTDIR)$(prefix)/bin $(DESTDIR)$(prefix)/mail $(DESTDIR)$(prefix)/cgi-bin
\tmkdir -p $(DESTDIR)$(prefix)/Mailman $(DESTDIR)$(prefix)/pythonlib $(DESTDIR)$(prefix)/scripts
\tfor d in $(VAR_DIRS); do mkdir -p $(DESTDIR)$(var_prefix)/$$d; chmod 2775 $(DESTDIR)$(var_prefix)/$$d; done
\tchmod 2775 $(DESTDIR)$(prefix) $(DESTDIR)$(prefix)/bin $(DESTDIR)$(prefix)/mail $(DESTDIR)$(prefix)/cgi-bin
\tchmod 2775 $(DESTDIR)$(prefix)/Mailman $(DESTDIR)$(prefix)/pythonlib
\tchmod 2771 $(DESTDIR)$(var_prefix)/archives/private
\tfor d in $(SUBDIRS); do $(MAKE) install-$$d; done
\t$(PYTHON) -m compileall -q $(DESTDIR)$(prefix)/Mailman

install-bin:
\tinstall -m 755 bin/newlist bin/mailmanctl bin/qrunner $(DESTDIR)$(prefix)/bin/

install-cron:

install-misc:
\tinstall -m 644 misc/paths.py $(DESTDIR)$(prefix)/bin/paths.py
\tinstall -m 644 misc/paths.py $(DESTDIR)$(prefix)/scripts/paths.py

install-Mailman:
\tinstall -m 644 Mailman/__init__.py Mailman/Defaults.py Mailman/Version.py Mailman/Utils.py $(DESTDIR)$(prefix)/Mailman/

install-scripts:
\tinstall -m 644 scripts/driver $(DESTDIR)$(prefix)/scripts/driver

install-src:
\tinstall -m 755 src/mailman $(DESTDIR)$(prefix)/mail/mailman
\tinstall -m 755 src/listinfo $(DESTDIR)$(prefix)/cgi-bin/listinfo
\tchmod g+s $(DESTDIR)$(prefix)/mail/mailman $(DESTDIR)$(prefix)/cgi-bin/listinfo

install-templates:
\tmkdir -p $(DESTDIR)$(prefix)/templates/en
\tinstall -m 644 templates/en/listinfo.html $(DESTDIR)$(prefix)/templates/en/listinfo.html

clean:
\trm -f src/mailman src/listinfo

distclean: clean
\trm -f Makefile Mailman/Defaults.py bin/newlist bin/mailmanctl bin/qrunner misc/paths.py
"""

WRAPPER_C = """\
#include <stdio.h>

/* Like Mailman's wrappers: the prefix is compiled in, never taken from the caller. */
int main(void)
{
    printf("prefix %s group %s\\n", PREFIX, GROUP);
    return 0;
}
"""

DEFAULTS_IN = """\
# mmdeb test fixture, standing in for Mailman/Defaults.py.in
PREFIX = '@prefix@'
VAR_PREFIX = '@VAR_PREFIX@'
DEFAULT_EMAIL_HOST = '@MAILHOST@'
DEFAULT_URL_HOST = '@URLHOST@'
MAILMAN_USER = '@MAILMAN_USER@'
MAILMAN_GROUP = '@MAILMAN_GROUP@'
CONFIGURE_OPTS = '@CONFIGURE_OPTS@'
"""

NEWLIST_IN = """\
#! @PYTHON@
# mmdeb test fixture, standing in for bin/newlist: a list is a directory under lists/
import os
import sys
import paths
from Mailman import Defaults, Utils
print('newlist for %s' % Utils.whoami())
names = [arg for arg in sys.argv[1:] if not arg.startswith('-')]
if names:
    os.makedirs(os.path.join(Defaults.VAR_PREFIX, 'lists', names[0].lower()))
"""

# Enough of bin/mailmanctl for systemd's Type=forking unit: `start` forks a master that
# sleeps, its pid in data/master-qrunner.pid (written before the parent exits); `stop`
# kills it; `restart` sends it SIGHUP, as Mailman's does.
MAILMANCTL_IN = """\
#! @PYTHON@
# mmdeb test fixture, standing in for bin/mailmanctl
import os
import signal
import sys
import paths
from Mailman import Defaults

PIDFILE = os.path.join(Defaults.VAR_PREFIX, 'data', 'master-qrunner.pid')
command = sys.argv[-1]
if command == 'start':
    pid = os.fork()
    if pid:
        with open(PIDFILE, 'w') as fh:
            fh.write('%d\\n' % pid)
        sys.exit(0)
    os.setsid()
    signal.signal(signal.SIGHUP, lambda *args: None)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    while True:
        signal.pause()
elif command in ('stop', 'restart'):
    with open(PIDFILE) as fh:
        pid = int(fh.read())
    os.kill(pid, signal.SIGTERM if command == 'stop' else signal.SIGHUP)
else:
    sys.exit('usage: mailmanctl [-s] [-q] start|stop|restart')
"""

# Enough of `bin/qrunner --drain` for the on-demand units: in rounds, remove every file of the
# queues (naming it in data/drained.log), until a round finds none.
QRUNNER_IN = """\
#! @PYTHON@
# mmdeb test fixture, standing in for bin/qrunner
import os
import sys
import paths
from Mailman import Defaults

if sys.argv[1:] != ['--drain=10', '--runner=All']:
    sys.exit('usage: qrunner --drain=10 --runner=All')
QUEUES = os.path.join(Defaults.VAR_PREFIX, 'qfiles')
LOG = os.path.join(Defaults.VAR_PREFIX, 'data', 'drained.log')
while True:
    found = sorted(os.path.join(queue, name) for queue in os.listdir(QUEUES)
                   for name in os.listdir(os.path.join(QUEUES, queue)))
    for path in found:
        os.unlink(os.path.join(QUEUES, path))
        with open(LOG, 'a') as log:
            log.write(path + '\\n')
    if not found:
        break
"""

PATHS_IN = """\
# mmdeb test fixture, standing in for misc/paths.py.in
import sys
prefix = '@prefix@'
sys.path.insert(0, prefix)
"""

# Code that a shared core holds, reading the Defaults of the domain that runs it.
UTILS = """\
# mmdeb test fixture, standing in for Mailman/Utils.py
from Mailman import Defaults


def whoami():
    return Defaults.DEFAULT_EMAIL_HOST
"""

DRIVER = """\
# mmdeb test fixture, standing in for scripts/driver (run by the wrappers, no #! line)
import paths
from Mailman import Utils
print('driver for %s' % Utils.whoami())
"""

PATCH = f"""\
Description: Mark the fixture as patched, so tests see the quilt series applied
Forwarded: not-needed
--- a/Mailman/Defaults.py.in
+++ b/Mailman/Defaults.py.in
@@ -6,3 +6,4 @@
 MAILMAN_USER = '@MAILMAN_USER@'
 MAILMAN_GROUP = '@MAILMAN_GROUP@'
 CONFIGURE_OPTS = '@CONFIGURE_OPTS@'
+{PATCH_MARKER}
"""


def files(version: str) -> dict[str, tuple[str, int]]:
    return {
        "configure": (CONFIGURE, 0o755),
        "Makefile.in": (MAKEFILE_IN, 0o644),
        "src/wrapper.c": (WRAPPER_C, 0o644),
        "Mailman/Version.py": (f"# mmdeb test fixture\nVERSION = '{version}'\n", 0o644),
        "Mailman/Defaults.py.in": (DEFAULTS_IN, 0o644),
        "bin/newlist.in": (NEWLIST_IN, 0o644),
        "bin/mailmanctl.in": (MAILMANCTL_IN, 0o644),
        "bin/qrunner.in": (QRUNNER_IN, 0o644),
        "misc/paths.py.in": (PATHS_IN, 0o644),
        "Mailman/__init__.py": ("# mmdeb test fixture\n", 0o644),
        "Mailman/Utils.py": (UTILS, 0o644),
        "scripts/driver": (DRIVER, 0o644),
        "templates/en/listinfo.html": ("<html>mmdeb test fixture</html>\n", 0o644),
        "README": ("mmdeb's test fixture; not Mailman.\n", 0o644),
    }


def write_tarball(target: Path, top: str, members: dict[str, tuple[str, int]]) -> Path:
    with tarfile.open(target, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, (text, mode) in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, FIXTURE_MTIME
            tar.addfile(info, io.BytesIO(data))
    return target


def make_fixture(directory: Path, flavour: str, version: str | None = None) -> tuple[Path, Path]:
    """Write the fixture tarball for flavour and its patch series; return (tarball, patches_dir)."""
    version = version or FIXTURE_VERSIONS[flavour]
    directory.mkdir(parents=True, exist_ok=True)
    tarball = write_tarball(directory / f"mailman-{version}.tar.gz", f"mailman-{version}", files(version))
    series_dir = directory / "patches" / flavour
    series_dir.mkdir(parents=True, exist_ok=True)
    (series_dir / "fixture-marker.patch").write_text(PATCH)
    (series_dir / "series").write_text("fixture-marker.patch\n")
    return tarball, directory / "patches"
