"""Who holds a claim on a batch of samples: a process named by host, pid and start time, so that
the claims of a dead (or zombie) process on this host are void at once, and a reused pid does not
keep them alive. Claims of another host lapse after CLAIM_TTL_S."""

from __future__ import annotations

import os
import socket
from pathlib import Path

CLAIM_TTL_S = 6 * 3600  # a claim covers one batch; older ones are from a lost process on another host


def process_start(pid: int) -> str | None:
    """Start time of a live process (Linux /proc, in clock ticks), None if it is gone or a zombie;
    "" where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else ""
    except OSError:
        return ""
    return None if fields[0] in ("Z", "X") else fields[19]


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid()) or ''}"


def owner_alive(owner: str) -> bool:
    """Claims of a dead process on this host are void at once (kill -9, then the same command).
    The owner id holds the process start time, so a reused pid does not keep a claim alive."""
    host, pid, started = (owner.split(":") + ["", ""])[:3]
    if host != socket.gethostname():
        return True  # cannot tell from here: trust the claim until it expires
    try:
        now = process_start(int(pid))
    except ValueError:
        return True
    if now == "":  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return now is not None and (not started or now == started)
