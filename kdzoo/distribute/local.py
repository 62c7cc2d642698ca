"""Start a multi-worker cluster on this machine: one process per worker on 127.0.0.1.

For trying ``--strategy multiworker`` (and its tests and benchmark) without several hosts:
each worker runs the same command with its own ``TF_CONFIG``, in its own process group,
with its output in ``<log_dir>/worker-<i>.log``. On exit every worker still running is
killed with its children.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence

HOST = "127.0.0.1"


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct TCP ports that were free on `host` a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker `index` in a cluster of workers at `addresses` ("host:port")."""
    if not 0 <= index < len(addresses):
        raise ValueError(f"Worker index {index} is outside the {len(addresses)} addresses {list(addresses)}.")
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}})


class LocalCluster:
    """`num_workers` processes running `command`, each told its place by ``TF_CONFIG``.

    Args:
        command: the argv every worker runs, e.g.
            ``[sys.executable, "-m", "kdzoo.cli", "distill", CONFIG, "--strategy", "multiworker"]``.
        num_workers: processes to start; worker 0 is the chief.
        log_dir: where ``worker-<i>.log`` (stdout and stderr) go.
        env: the workers' environment (default: this process's).

    Use as a context manager: ``with LocalCluster(cmd, 2, logs) as cluster: cluster.wait(600)``.
    """

    def __init__(
        self,
        command: Sequence[str],
        num_workers: int,
        log_dir: str | os.PathLike,
        env: Mapping[str, str] | None = None,
    ):
        if num_workers < 1:
            raise ValueError(f"Expected at least one worker. Received: num_workers={num_workers}")
        self.command = list(command)
        self.num_workers = int(num_workers)
        self.log_dir = pathlib.Path(log_dir)
        self.env = dict(os.environ if env is None else env)
        self.addresses = [f"{HOST}:{p}" for p in free_ports(num_workers)]
        self.processes: list[subprocess.Popen] = []

    def start(self) -> "LocalCluster":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for i in range(self.num_workers):
            env = {**self.env, "TF_CONFIG": tf_config(self.addresses, i)}
            with open(self.log(i), "w") as out:
                self.processes.append(subprocess.Popen(
                    self.command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                ))
        return self

    def log(self, index: int) -> pathlib.Path:
        return self.log_dir / f"worker-{index}.log"

    def output(self, index: int) -> str:
        path = self.log(index)
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, timeout: float, poll: float = 0.5) -> list[int]:
        """Exit codes of every worker; raises `TimeoutError` (after killing them) past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.processes):
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"Workers still running after {timeout:.0f}s; killed. Logs in {self.log_dir}.")
            time.sleep(poll)
        return [p.returncode for p in self.processes]

    def kill(self, index: int | None = None) -> None:
        """SIGKILLs worker `index` (default: every worker) with its whole process group."""
        for i, p in enumerate(self.processes):
            if (index is None or i == index) and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
