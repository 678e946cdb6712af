"""Run generated code in a subprocess sandbox: a temporary directory, a time limit, resource limits, a clean environment.

What it does, and what it does not::

    tempfile.TemporaryDirectory   the files are written to <tmp>/work (the cwd, and HOME); removed afterwards
    wall-clock limit              the process group is SIGKILLed after ``Limits.time_s`` (start_new_session)
    resource.setrlimit            in ``preexec_fn``: CPU seconds (SIGXCPU, then SIGKILL), address space
                                  (MemoryError), file size (SIGXFSZ), processes, open files; core dumps off
    environment                   built from an allowlist (PATH, locale), then anything that looks like a proxy
                                  or a credential removed (``*_proxy``, ``*_KEY``, ``*TOKEN*``, ``CONVEYOR_*``…)
    output                        stdout and stderr go to one file (so the file-size limit bounds it, not the
                                  parent's memory); the caller gets its head and tail, ``Limits.output_chars`` long

It is not a security boundary against hostile code: there is no network namespace (only the proxy
variables and keys are gone), no seccomp, and the process runs as the caller's user (as root the
kernel does not enforce ``RLIMIT_NPROC``). It stops the accidents that generated code makes: an
infinite loop, a memory blow-up, a runaway write, a fork loop, a test reaching for an API key.

``preexec_fn`` runs between fork and exec; CPython warns that it may deadlock in a process with
threads if the function takes a lock. Ours only calls ``setrlimit`` (no allocation-heavy Python, no
locks), and the sandbox is run from a worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = [
    "Limits",
    "SandboxRun",
    "SandboxStartError",
    "UnsafeFileError",
    "clean_env",
    "pytest_files",
    "run_files",
    "run_pytest",
    "run_pytest_async",
    "run_python",
    "safe_name",
]

ALLOWED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
SECRET_ENV = re.compile(r"proxy|key|token|secret|passw|credential|auth|cookie|session|^conveyor_|^openai|^aws_|"
                        r"^azure_|^gcp_|^google_|^anthropic|^hf_|^huggingface", re.I)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_FILES = 20
MAX_FILE_BYTES = 200_000
MAX_DEPTH = 3


class UnsafeFileError(ValueError):
    """A generated file name would escape the sandbox or is not a plain relative path: use names like ``pkg/mod.py``."""


class SandboxStartError(RuntimeError):
    """The sandboxed interpreter could not be started; the message names the command and the OS error."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use. ``time_s`` is wall clock; ``cpu_s`` is CPU time (``RLIMIT_CPU``)."""

    time_s: float = 20.0
    cpu_s: int = 10
    memory_mb: int = 512  # RLIMIT_AS: pytest itself peaks near 40 MB of address space with plugins off
    file_mb: int = 8  # RLIMIT_FSIZE: bounds every file written, the output log included
    processes: int = 64  # RLIMIT_NPROC (not enforced by the kernel for root)
    open_files: int = 256  # RLIMIT_NOFILE
    output_chars: int = 6000

    def apply(self) -> None:
        """Set the limits on the current process (called in the child, between fork and exec).

        A limit is never raised above the hard limit the process already has (that would fail).
        """
        mb = 1024 * 1024
        for which, soft, hard in (
            (resource.RLIMIT_CPU, self.cpu_s, self.cpu_s + 1),
            (resource.RLIMIT_AS, self.memory_mb * mb, self.memory_mb * mb),
            (resource.RLIMIT_FSIZE, self.file_mb * mb, self.file_mb * mb),
            (resource.RLIMIT_NPROC, self.processes, self.processes),
            (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
            (resource.RLIMIT_CORE, 0, 0),
        ):
            _, current = resource.getrlimit(which)
            if current != resource.RLIM_INFINITY:
                soft, hard = min(soft, current), min(hard, current)
            resource.setrlimit(which, (soft, hard))


@dataclass(frozen=True)
class SandboxRun:
    """How one sandboxed command ended: exit code or signal, whether the wall clock ran out, its output."""

    command: list[str]
    exit_code: int | None  # None: killed by a signal (see ``signal``)
    signal: str | None
    timed_out: bool
    output: str  # stdout and stderr interleaved, head and tail when longer than Limits.output_chars
    truncated: bool
    duration_s: float
    files: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def describe(self) -> str:
        """One line: how it ended."""
        if self.timed_out:
            return f"killed after the {self.duration_s:.1f}s time limit"
        if self.signal is not None:
            why = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (file size limit)",
                   "SIGKILL": " (killed: CPU or memory limit)"}.get(self.signal, "")
            return f"killed by {self.signal}{why}"
        return f"exit code {self.exit_code}"


def safe_name(name: str) -> str:
    """``name`` as a normalised relative POSIX path, or :class:`UnsafeFileError` saying why not."""
    path = PurePosixPath(name.strip())
    parts = path.parts
    if not parts or path.is_absolute() or "\\" in name:
        raise UnsafeFileError(f"file name {name!r} is not a relative path like 'mod.py' or 'pkg/mod.py'")
    if len(parts) > MAX_DEPTH or any(p in (".", "..") or not _NAME.match(p) for p in parts):
        raise UnsafeFileError(
            f"file name {name!r} must be at most {MAX_DEPTH} parts of letters, digits, '_', '.' and '-', without '..'"
        )
    return str(path)


def pytest_files(files: Mapping[str, str]) -> list[str]:
    """The pytest files among ``files`` (``test_*.py`` or ``*_test.py``), sorted."""
    return sorted(n for n in files if PurePosixPath(n).name.startswith("test_") and n.endswith(".py")
                  or n.endswith("_test.py"))


def clean_env(source: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The sandbox's environment: allowlisted variables of ``source`` plus ``extra``, minus proxies and secrets."""
    source = os.environ if source is None else source
    env = {k: v for k, v in source.items() if k in ALLOWED_ENV}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra or {})
    return {k: v for k, v in env.items() if not SECRET_ENV.search(k)}


def _write(root: Path, files: Mapping[str, str]) -> list[str]:
    if len(files) > MAX_FILES:
        raise UnsafeFileError(f"{len(files)} files given; the sandbox takes at most {MAX_FILES}")
    written = []
    for name, content in files.items():
        rel = safe_name(name)
        data = content.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            raise UnsafeFileError(f"file {rel!r} is {len(data):,} bytes; the sandbox takes at most {MAX_FILE_BYTES:,}")
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(rel)
    return written


def _read_bounded(path: Path, limit: int) -> tuple[str, bool]:
    """The file's text, or its head (a third) and tail (the rest) with a marker, when over ``limit`` characters."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size <= limit * 4:
            text = fh.read().decode("utf-8", "replace")
            if len(text) <= limit:
                return text, False
            head_text, tail_text = text[: limit // 3], text[-(limit - limit // 3):]
        else:  # never read a huge log whole: a head and a tail of bytes
            head_text = fh.read(limit // 3 * 4).decode("utf-8", "replace")[: limit // 3]
            fh.seek(size - (limit - limit // 3) * 4)
            tail_text = fh.read().decode("utf-8", "replace")[-(limit - limit // 3):]
    cut = max(0, size - len(head_text) - len(tail_text))
    return f"{head_text}\n… [{cut:,} characters cut] …\n{tail_text}", True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_files(
    files: Mapping[str, str], argv: Sequence[str], limits: Limits = Limits(), *,
    env: Mapping[str, str] | None = None, setup: Callable[[Path], Sequence[str]] | None = None,
) -> SandboxRun:
    """Write ``files`` to a fresh temporary directory and run ``argv`` there under ``limits`` (blocking).

    ``setup(outer)`` may add arguments that need the temporary directory (``outer``, the parent of the
    work directory, which the generated files cannot name). ``env`` adds variables, still filtered.
    """
    with tempfile.TemporaryDirectory(prefix="conveyor-sandbox-") as outer_name:
        outer = Path(outer_name)
        work = outer / "work"
        work.mkdir()
        written = _write(work, files)
        command = [*argv, *(setup(outer) if setup is not None else ())]
        base = {"HOME": str(work), "TMPDIR": str(work), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        log_path = outer / "output.log"
        started = time.perf_counter()
        timed_out = False
        with log_path.open("wb") as log:
            try:
                proc = subprocess.Popen(
                    command, cwd=work, env=clean_env(extra={**base, **(env or {})}), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=limits.apply,
                    close_fds=True,
                )
            except (OSError, subprocess.SubprocessError) as exc:  # SubprocessError: the limits could not be set
                raise SandboxStartError(f"could not start {command[0]!r} in the sandbox: {exc}") from exc
            try:
                proc.wait(timeout=limits.time_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
            finally:
                _kill_group(proc.pid)  # what the code left running in the background goes too
        duration = time.perf_counter() - started
        output, truncated = _read_bounded(log_path, limits.output_chars)
    code = proc.returncode
    sig = signal.Signals(-code).name if code is not None and code < 0 else None
    return SandboxRun(command=list(command), exit_code=None if sig is not None or timed_out else code, signal=sig,
                      timed_out=timed_out, output=output, truncated=truncated, duration_s=round(duration, 4),
                      files=written)


def run_pytest(files: Mapping[str, str], limits: Limits = Limits(), tests: Sequence[str] | None = None) -> SandboxRun:
    """``python -m pytest -q`` on the test files among ``files`` (or ``tests``), in the sandbox (blocking).

    Plugins from the host are not loaded and no cache is written; an ini file outside the work
    directory keeps a generated ``pytest.ini`` or ``pyproject.toml`` from changing the options.
    """
    chosen = list(tests) if tests is not None else pytest_files(files)

    def ini(outer: Path) -> list[str]:
        (outer / "pytest.ini").write_text("[pytest]\n")
        return ["-c", str(outer / "pytest.ini"), "--rootdir", str(outer / "work"), *chosen]

    argv = [sys.executable, "-B", "-E", "-s", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no",
            "--no-header"]
    return run_files(files, argv, limits, setup=ini)


def run_python(files: Mapping[str, str], entry: str, limits: Limits = Limits()) -> SandboxRun:
    """``python ENTRY`` (one of ``files``) in the sandbox (blocking)."""
    return run_files(files, [sys.executable, "-B", "-E", "-s", safe_name(entry)], limits)


async def run_pytest_async(files: Mapping[str, str], limits: Limits = Limits()) -> SandboxRun:
    """:func:`run_pytest` on a worker thread: the event loop keeps serving while the tests run."""
    return await asyncio.to_thread(run_pytest, files, limits)
