"""The `wmbench` command line. Heavy libraries are imported only inside the commands that need
them, so `wmbench --help`, `list` and `validate` start fast."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading

from ..core.errors import EXIT_BAD_INPUT, EXIT_SAMPLES_FAILED, BadInput
from .parser import build_parser

__all__ = ["main", "build_parser"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    # a scheduler's SIGTERM stops like Ctrl-C: results for what is done, exit 1
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return args.func(args)
    except BadInput as exc:
        return _refuse(str(exc), args)
    except OSError as exc:  # the environment: a full disk, an unreadable or unwritable path
        return _refuse(_os_error(exc), args)
    except sqlite3.Error as exc:  # a run store that cannot be written (read-only, full disk) or is damaged
        return _refuse(f"the run store failed: {exc} (see the run directory named above; a read-only or full "
                       "disk, or a damaged store.sqlite)", args)
    except KeyboardInterrupt:
        print("wmbench: interrupted; every finished batch is stored: re-run the same command to resume",
              file=sys.stderr)
        return EXIT_SAMPLES_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _refuse(message: str, args: argparse.Namespace) -> int:
    """Bad input or environment: one line naming what and where, exit 2; the traceback with --debug."""
    from ..core.secrets import scrub

    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()
    print(f"wmbench: error: {scrub(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == 28:
        return f"no space left on the device{where}; free some space and run the same command again to resume"
    return f"{exc.strerror or exc}{where}"


if __name__ == "__main__":
    sys.exit(main())
