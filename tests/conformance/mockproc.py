"""Starting and stopping ``ccm-mock-pca`` for the conformance tests.

The binary is ``CCM_MOCK_PCA_BIN`` (default ``target/debug/ccm-mock-pca`` under the repository
root). It listens on 127.0.0.1:0 with TLS, prints its URL as the first stdout line, and is always
terminated when the ``with`` block ends, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
MOCK_BIN = Path(os.environ.get("CCM_MOCK_PCA_BIN", REPO_ROOT / "target" / "debug" / "ccm-mock-pca"))


@dataclass
class MockServer:
    url: str
    ca_pem: Path
    proc: subprocess.Popen
    iam_url: str | None = None


def _read_lines(proc: subprocess.Popen, count: int, timeout: float) -> list[str]:
    """The first `count` stdout lines: the PCA URL, then (with --iam-listen) the IAM URL."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while buf.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise RuntimeError(f"mock did not print its URL (exit={proc.poll()}, got {buf!r})")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("mock closed stdout before printing its URL")
            buf += chunk
    return [line.decode().strip() for line in buf.split(b"\n")[:count]]


@contextlib.contextmanager
def running_mock(work: Path, args: list[str], lines: int = 1) -> Iterator[MockServer]:
    """``ccm-mock-pca --listen 127.0.0.1:0 --tls …`` plus `args` (credentials, CAs, …); `lines`
    is 2 with ``--iam-listen`` (its URL is the second stdout line)."""
    if not MOCK_BIN.exists():
        raise RuntimeError(f"mock binary not found at {MOCK_BIN}; run `cargo build -p ccm-mock-pca` or set CCM_MOCK_PCA_BIN")
    ca_pem = work / "tls-ca.pem"
    command = [str(MOCK_BIN), "--listen", "127.0.0.1:0", "--tls", "--tls-ca-out", str(ca_pem), *args]
    with open(work / "mock.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        try:
            urls = _read_lines(proc, lines, timeout=60)
            assert all(u.startswith("https://127.0.0.1:") for u in urls), urls
            yield MockServer(url=urls[0], ca_pem=ca_pem, proc=proc, iam_url=urls[1] if lines > 1 else None)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
