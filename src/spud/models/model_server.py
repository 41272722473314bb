"""The embedded model's llama.cpp server on a local port: restarted if it dies, stopped on exit."""

from __future__ import annotations

import atexit
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from spud.core.errors import ModelError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the process that started it ends (even by kill -9)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ModelServer:
    """One llama-cpp-python OpenAI-compatible server (`python -m llama_cpp.server`) for a GGUF,
    watched by a thread that starts it again when it exits without being asked to."""

    def __init__(
        self,
        path: Path,
        alias: str,
        context_window: int,
        threads: int = 0,
        port: int = 0,
        log_file: Path | None = None,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.path = path
        self.alias = alias
        self.context_window = context_window
        self.threads = threads
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.path)]
        cmd += ["--model_alias", self.alias, "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--n_ctx", str(self.context_window), "--seed", "0", "--verbose", "False"]
        # a streamed answer must not be cut off when another session's request arrives
        cmd += ["--interrupt_requests", "False"]
        if self.threads:
            cmd += ["--n_threads", str(self.threads)]
        else:
            cmd += ["--n_threads", "-1"]  # all cores, as in-process (its default is half)
        return cmd

    def start(self) -> ModelServer:
        """Start the server, wait until it answers, then watch it; ModelError if it cannot.

        Every server process is started by the watcher thread: the kernel's parent-death
        signal follows the thread that started a child, and this one lives until stop().
        """
        failed: list[ModelError] = []
        ready = threading.Event()

        def watch() -> None:
            try:
                self._spawn()
            except ModelError as exc:
                failed.append(exc)
                return
            finally:
                ready.set()
            self._watch()

        self._watcher = threading.Thread(target=watch, name="model-server", daemon=True)
        self._watcher.start()
        ready.wait()
        if failed:
            raise failed[0]
        atexit.register(self.stop)
        return self

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
            try:
                self.proc = subprocess.Popen(
                    self.command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509  # no orphan after a kill -9
                )
            finally:
                if self.log_file:
                    out.close()  # type: ignore[union-attr]
            proc = self.proc
        self._wait_ready(proc)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if proc.poll() is not None:
                raise ModelError(
                    f"the model server exited at start (code {proc.returncode})" + self._log_tail()
                )
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        if not self._stopping.is_set():
            proc.kill()
            raise ModelError(
                f"the model server did not answer within {self.start_timeout_s:.0f} s"
                + self._log_tail()
            )

    def _log_tail(self) -> str:
        if not self.log_file or not self.log_file.is_file():
            return ""
        return "; its log ends: " + self.log_file.read_text(errors="replace")[-800:]

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                log.warning(
                    "the model server exited (code %s); starting it again (restart %d)",
                    proc.returncode,
                    self.restarts,
                )
                try:
                    self._spawn()
                except ModelError as exc:
                    log.error("%s; trying again in 5 s", exc)
                    self._stopping.wait(5.0)
                continue
            self._stopping.wait(0.5)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """Stop watching and end the server (SIGTERM, then SIGKILL after 10 s)."""
        self._stopping.set()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        atexit.unregister(self.stop)
