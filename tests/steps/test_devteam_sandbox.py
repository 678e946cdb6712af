"""The devteam sandbox really limits what generated code does: time, CPU, memory, file size, files, environment.

Each test runs a real subprocess with small limits, so it takes a fraction of a second (the wall-clock
test waits for its 0.5 s limit). Nothing asserts on how long a run took, only on how it ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from pathlib import Path

import pytest

from steps.devteam.sandbox import (
    Limits,
    SandboxStartError,
    UnsafeFileError,
    clean_env,
    pytest_files,
    run_files,
    run_pytest,
    run_pytest_async,
    run_python,
    safe_name,
)

SMALL = Limits(time_s=5.0, cpu_s=2, memory_mb=256, file_mb=1, processes=64, open_files=64, output_chars=2000)
MODULE = "def double(x):\n    return x * 2\n"
PASSING = "from double import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
FAILING = "from double import double\n\n\ndef test_double():\n    assert double(3) == 7\n"


def test_pytest_passes_and_fails_on_the_generated_files() -> None:
    ok = run_pytest({"double.py": MODULE, "test_double.py": PASSING}, SMALL)
    assert ok.passed and ok.exit_code == 0 and "1 passed" in ok.output
    bad = run_pytest({"double.py": MODULE, "test_double.py": FAILING}, SMALL)
    assert not bad.passed and bad.exit_code == 1
    assert "assert 6 == 7" in bad.output and "FAILED test_double.py::test_double" in bad.output


def test_a_generated_ini_file_does_not_change_pytest_options() -> None:
    files = {"double.py": MODULE, "test_double.py": FAILING, "pytest.ini": "[pytest]\naddopts = --co\n"}
    assert run_pytest(files, SMALL).exit_code == 1  # with --co from the file, collection alone would exit 0


def test_an_infinite_loop_is_stopped_by_the_cpu_limit() -> None:
    run = run_python({"spin.py": "while True:\n    pass\n"}, "spin.py", Limits(time_s=10, cpu_s=1))
    assert not run.passed and not run.timed_out
    assert run.signal in ("SIGXCPU", "SIGKILL") and run.exit_code is None
    assert "CPU" in run.describe()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie waiting for init to reap it is dead


def test_a_sleeping_process_and_its_children_are_killed_at_the_time_limit(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
            "time.sleep(60)\n")
    run = run_python({"sleepy.py": code}, "sleepy.py", Limits(time_s=1.0, cpu_s=5))
    assert run.timed_out and not run.passed and run.exit_code is None
    assert "time limit" in run.describe()
    child = int(pid_file.read_text())  # the grandchild was in the sandbox's process group: it died with it
    for _ in range(200):
        if not _alive(child):
            break
        time.sleep(0.01)
    assert not _alive(child)


def test_a_memory_bomb_fails() -> None:
    run = run_python({"bomb.py": "block = bytearray(1 << 30)\nprint('allocated')\n"}, "bomb.py", SMALL)
    assert not run.passed and run.exit_code == 1
    assert "MemoryError" in run.output and "allocated" not in run.output


def test_writing_past_the_file_size_limit_fails() -> None:
    code = "with open('big.bin', 'wb') as fh:\n    fh.write(b'x' * (4 << 20))\nprint('written')\n"
    run = run_python({"big.py": code}, "big.py", SMALL)
    assert not run.passed and "written" not in run.output
    assert "File too large" in run.output or run.signal == "SIGXFSZ"


def test_opening_too_many_files_fails() -> None:
    run = run_python({"fds.py": "handles = [open('fds.py') for _ in range(200)]\n"}, "fds.py", SMALL)
    assert not run.passed and "Too many open files" in run.output


def test_the_limits_are_those_asked_for() -> None:
    code = ("import json, resource\nprint(json.dumps({n: resource.getrlimit(getattr(resource, n)) for n in "
            "['RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NPROC', 'RLIMIT_NOFILE', 'RLIMIT_CORE']}))\n")
    run = run_python({"limits.py": code}, "limits.py", SMALL)
    mb = 1 << 20
    assert json.loads(run.output) == {
        "RLIMIT_CPU": [2, 3], "RLIMIT_AS": [256 * mb, 256 * mb], "RLIMIT_FSIZE": [mb, mb],
        "RLIMIT_NPROC": [64, 64], "RLIMIT_NOFILE": [64, 64], "RLIMIT_CORE": [0, 0]}


@pytest.mark.skipif(os.geteuid() == 0, reason="the kernel does not enforce RLIMIT_NPROC for root")
def test_a_fork_loop_is_stopped_by_the_process_limit() -> None:
    code = ("import os, time\nfor i in range(400):\n    if os.fork() == 0:\n        time.sleep(2)\n        os._exit(0)\n")
    run = run_python({"forks.py": code}, "forks.py", Limits(time_s=5, processes=32))
    assert not run.passed and ("Resource temporarily unavailable" in run.output or "BlockingIOError" in run.output)


def test_network_and_secret_variables_are_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "https_proxy", "ALL_PROXY", "no_proxy", "OPENAI_API_KEY", "CONVEYOR_LLM_API_KEY",
                 "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"):
        monkeypatch.setenv(name, "leak")
    monkeypatch.setenv("LANG", "C.UTF-8")
    run = run_python({"env.py": "import json, os\nprint(json.dumps(dict(os.environ)))\n"}, "env.py", SMALL)
    env = json.loads(run.output)
    assert "leak" not in env.values()
    assert env["LANG"] == "C.UTF-8" and env["HOME"].endswith("/work") and env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert clean_env({"PATH": "/bin", "HTTPS_PROXY": "x"}, {"MY_API_KEY": "y", "GREETING": "hi"}) == {
        "PATH": "/bin", "GREETING": "hi"}


def test_the_temporary_directory_is_removed_and_the_output_bounded() -> None:
    code = "import os\nprint(os.getcwd())\nprint('x' * 50000)\nprint('the end')\n"
    run = run_python({"pkg/loud.py": code}, "pkg/loud.py", SMALL)
    workdir = Path(run.output.splitlines()[0])
    assert workdir.name == "work" and workdir.parent.name.startswith("conveyor-sandbox-")
    assert not workdir.parent.exists()
    assert run.truncated and len(run.output) < SMALL.output_chars + 100
    assert run.output.rstrip().endswith("the end") and "characters cut" in run.output
    assert run.files == ["pkg/loud.py"]


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.py", "a/../../b.py", "", "a b.py", "x\\y.py", "a/b/c/d.py"])
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeFileError):
        safe_name(name)
    with pytest.raises(UnsafeFileError):
        run_files({name: "print(1)\n"}, ["true"], SMALL)


def test_test_files_are_found_by_pytest_names() -> None:
    files = {"m.py": "", "test_m.py": "", "pkg/test_x.py": "", "m_test.py": "", "testing.py": "", "notes.txt": ""}
    assert pytest_files(files) == ["m_test.py", "pkg/test_x.py", "test_m.py"]


def test_the_async_run_leaves_the_event_loop_free() -> None:
    files = {"double.py": MODULE, "test_double.py": "import time\n\n\ndef test_slow():\n    time.sleep(0.3)\n"}

    async def main() -> tuple[bool, int]:
        ticks = 0
        task = asyncio.ensure_future(run_pytest_async(files, SMALL))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return (await task).passed, ticks

    passed, ticks = asyncio.run(main())
    assert passed and ticks >= 5  # the loop kept turning while pytest slept 0.3 s in the subprocess


def test_the_parent_keeps_its_own_limits() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    run_python({"x.py": "pass\n"}, "x.py", SMALL)
    assert resource.getrlimit(resource.RLIMIT_AS) == before


def test_limits_above_the_hard_limit_are_lowered_to_it_and_a_bad_command_is_named() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    asked = hard + 1000 if hard != resource.RLIM_INFINITY else 1 << 20
    code = "import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE)[1])\n"
    run = run_python({"n.py": code}, "n.py", Limits(open_files=asked))
    assert run.passed and int(run.output) == min(asked, hard)
    with pytest.raises(SandboxStartError, match="no-such-interpreter"):
        run_files({}, ["/nonexistent/no-such-interpreter"], SMALL)
