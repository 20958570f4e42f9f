"""The only place that runs external commands.

Every command is logged as `$ shlex.join(argv)` and its output is teed into the
build log that is kept beside the artifacts.
"""

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

import sh

from mmdeb.errors import MmdebError

log = logging.getLogger(__name__)
logging.getLogger("sh").setLevel(logging.WARNING)  # it logs every process start at INFO


def require(program: str, package: str) -> None:
    """Fail early, naming the package, if program is not on PATH."""
    if not shutil.which(program):
        raise MmdebError(f"{program} is not installed", f"apt-get install {package}")


class CommandFailed(MmdebError):
    def __init__(self, message: str, remedy: str, output: str):
        super().__init__(message, remedy)
        self.output = output


class Runner:
    def __init__(self, log_path: Path | None = None, echo: bool = False):
        self.log_path = log_path
        self.echo = echo

    def with_log(self, log_path: Path) -> "Runner":
        return Runner(log_path, self.echo)

    def run(self, argv: list[str], *, what: str, cwd: Path | None = None, env: dict | None = None,
            stdin: str | None = None, own_group: bool = False) -> str:
        """Run argv (with stdin as its input); return its combined output. On failure raise
        CommandFailed: what (such as "building mailman-lists.example.org 2.2.0-1+deb13") failed,
        and the log to read, or without a log the output's last line; the argv is in the log and
        in -v's output. own_group: in a process group of its own, for commands that signal their
        whole group."""
        line = shlex.join(argv)
        log.info("$ %s", line)
        output: list[str] = []
        log_file = open(self.log_path, "a", encoding="utf-8", errors="replace") if self.log_path else None

        def sink(chunk: str) -> None:
            output.append(chunk)
            if log_file:
                log_file.write(chunk)
                log_file.flush()
            if self.echo:
                sys.stderr.write(chunk)

        try:
            if log_file:
                log_file.write(f"$ {line}\n")
            sh.Command(argv[0])(
                *argv[1:],
                _cwd=str(cwd) if cwd else None,
                _env={**os.environ, **(env or {})},
                _out=sink,
                _err_to_out=True,
                _in=stdin,
                _tty_out=False,
                _new_group=own_group,
            )
        except sh.CommandNotFound:
            raise MmdebError(f"{argv[0]} is not installed", f"install it (apt-get install {argv[0]})")
        except sh.ErrorReturnCode as exc:
            if self.log_path:
                raise CommandFailed(f"{what} failed: see {self.log_path}",
                                    "correct what the end of that log reports, then run again", "".join(output))
            lines = "".join(output).strip().splitlines()
            reason = f" ({argv[0]} exited with {exc.exit_code}{': ' + lines[-1].strip() if lines else ''})"
            raise CommandFailed(f"{what} failed{reason}", "run mmdeb -v to see the command and its whole output",
                                "".join(output))
        finally:
            if log_file:
                log_file.close()
        return "".join(output)
