"""Stress the daemon's shutdown: make a server leader, SIGTERM it soon after,
time its exit; repeat. A clean exit takes well under a second (a few more
when it is the last of its cluster). Usage:

    .venv/bin/python scripts/stress_shutdown.py [CYCLES]

Before the fix of the swallowed cancellations (Python 3.11's wait_for and
Leadership's suppress(CancelledError)) about 1 cycle in 30 hung until killed.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import Cluster  # noqa: E402


def main(cycles: int) -> int:
    root = Path(tempfile.mkdtemp(prefix="heroctl-stress-shutdown-"))
    c = Cluster(root, 3).start()
    done = threading.Event()

    def writer() -> None:  # applies arriving while tasks are cancelled
        i = 0
        while not done.is_set():
            for s in c.live():
                with contextlib.suppress(OSError):
                    s.post("/v1/jobs", {"name": f"w{i % 20}", "image": "busybox"}, timeout=3)
                i += 1

    threading.Thread(target=writer, daemon=True).start()
    hung = 0
    try:
        for n in range(cycles):
            leader = c.leader()
            target = random.choice([s for s in c.servers if s is not leader and s.alive])
            with contextlib.suppress(OSError):
                leader.post("/v1/raft/transfer-leadership", {"to": target.name}, timeout=10)
            time.sleep(random.uniform(0, 0.8))  # a random point after the leadership change
            assert target.proc is not None
            started = time.monotonic()
            target.proc.send_signal(signal.SIGTERM)
            try:
                outcome = str(target.proc.wait(12))
            except subprocess.TimeoutExpired:
                target.proc.send_signal(signal.SIGUSR1)  # stacks into its log
                time.sleep(1)
                target.proc.kill()
                target.proc.wait(5)
                outcome, hung = "HUNG", hung + 1
            print(f"cycle {n}: {target.name} {outcome} {time.monotonic() - started:.2f}s")
            target.start(peers=c.peers)
            c.wait_ready()
    finally:
        done.set()
        c.stop()
    print(f"{hung} of {cycles} shutdowns hung; logs in {root}")
    return 1 if hung else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
