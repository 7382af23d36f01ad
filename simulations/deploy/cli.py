"""The command line of the deployment demo (``python -m simulations.deploy``)."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import simulations.deploy as package
from simulations.deploy.certificates import DEMO_CERT_DAYS, check_tls
from simulations.deploy.common import DemoError, say
from simulations.deploy.demo import prepare, run_demo, run_identity_probe


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of the demo."""
    doc = package.__doc__ or ""
    parser = argparse.ArgumentParser(
        prog="python -m simulations.deploy", description=doc.split("\n\n")[0]
    )
    parser.add_argument(
        "--tls-auth",
        action="store_true",
        help="TLS and SuperNode authentication; also checks that plain text and an "
        "unregistered SuperNode are refused, and restarts the flagged SuperNode",
    )
    parser.add_argument(
        "--restart-flagged",
        action="store_true",
        help="restart the flagged SuperNode once flagged (implied by --tls-auth)",
    )
    parser.add_argument(
        "--identity-probe",
        action="store_true",
        help="no run: restart one SuperNode and print its node ids",
    )
    parser.add_argument(
        "--prepare",
        type=Path,
        metavar="DIR",
        default=None,
        help="no run: write certificates, SuperNode keys, the app copy and the "
        "CLI config for the manual walk-through of docs/deploying.md into DIR",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=9092,
        help="SuperLink port written by --prepare (default: 9092)",
    )
    parser.add_argument(
        "--cert-days",
        type=int,
        default=DEMO_CERT_DAYS,
        help="validity of the certificates written by --prepare, in days "
        f"(default: {DEMO_CERT_DAYS})",
    )
    parser.add_argument(
        "--check-tls",
        type=_address,
        metavar="HOST:PORT",
        default=None,
        help="no run: check that the SuperLink at HOST:PORT refuses plain text "
        "and answers over TLS (needs --ca-cert)",
    )
    parser.add_argument(
        "--ca-cert",
        type=Path,
        default=None,
        help="CA certificate for --check-tls",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="give up after this many seconds (default: 900)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the certificates, keys and logs here (default: a temporary "
        "folder, deleted on success)",
    )
    args = parser.parse_args(argv)
    if args.check_tls is not None and args.ca_cert is None:
        parser.error("--check-tls needs --ca-cert (the CA certificate to trust)")
    if args.cert_days < 1:
        parser.error(f"--cert-days must be at least 1, got {args.cert_days}")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when every check passed, 1 when one failed."""
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.check_tls is not None:
            host, port = args.check_tls
            say(check_tls(host, port, args.ca_cert))
        elif args.prepare is not None:
            prepare(args.prepare, args.port, days=args.cert_days)
        elif args.identity_probe:
            run_identity_probe(
                tls_auth=args.tls_auth, timeout=args.timeout, workdir=args.workdir
            )
        else:
            run_demo(
                tls_auth=args.tls_auth,
                restart=args.tls_auth or args.restart_flagged,
                timeout=args.timeout,
                workdir=args.workdir,
            )
    except DemoError as err:
        say(f"FAILED: {err}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; every process started was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
