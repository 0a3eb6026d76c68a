"""`medseg listen`: a DICOM storage node that segments what a PACS pushes to it and sends the SEGs back.

    medseg listen --model MODEL --out OUT --send-to URL|AE@HOST:PORT [--port 11112] [--ae-title MEDSEG]
                  [--host 127.0.0.1] [--allow-ae AE ...] [--quiet-seconds 10] [--max-disk-gb GB]
                  [--max-attempts 8] [--retry-seconds 5] [--credentials FILE] [--device cpu|cuda]

Runs until SIGTERM or Ctrl-C. Logs go to stderr and OUT/node.log (series by hashed key only).
Restarted with the same OUT, it finishes what it had received (``medseg.pacs.node``).
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

NODE_LOG = "node.log"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the subcommand."""
    parser = subparsers.add_parser(
        "listen",
        help="run a DICOM node: receive studies (C-STORE), segment each series, send the SEG back",
        description="A storage SCP that receives studies, treats a series as complete after --quiet-seconds "
        "without a new object, queues it on disk (OUT/queue.sqlite3), segments it like `medseg predict` "
        "(OUT/<case_id>/, OUT/report.json) and sends the DICOM-SEG to --send-to (STOW-RS to a DICOMweb root, "
        "or C-STORE to AE@HOST:PORT), retrying with backoff. Killed and restarted with the same OUT, it "
        "finishes what it had received and sends nothing twice.",
    )
    parser.add_argument("--model", type=Path, required=True, metavar="MODEL",
                        help="model folder, or the name of a shipped model (`medseg models`)")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="the node's folder")
    parser.add_argument("--send-to", required=True, metavar="TARGET",
                        help="where SEGs go: a DICOMweb root (http(s)://HOST/dicom-web) or AE@HOST:PORT")
    parser.add_argument("--port", type=int, default=11112, help="DICOM port to listen on (default 11112)")
    parser.add_argument("--ae-title", default="MEDSEG", help="this node's AE title (default MEDSEG)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    parser.add_argument("--allow-ae", action="append", default=[], metavar="AE",
                        help="accept associations only from this calling AE title (repeat for several)")
    parser.add_argument("--quiet-seconds", type=float, default=10.0,
                        help="a series is complete after this long without a new object (default 10)")
    parser.add_argument("--max-disk-gb", type=float, default=None,
                        help="refuse new objects (status 0xA700) while OUT uses more than this (default: no limit)")
    parser.add_argument("--max-attempts", type=int, default=8,
                        help="send attempts per series before it is failed in the report (default 8)")
    parser.add_argument("--retry-seconds", type=float, default=5.0,
                        help="first retry delay; it doubles after each failure, up to 10 minutes (default 5)")
    parser.add_argument("--credentials", type=Path, default=None, metavar="FILE",
                        help="credentials file for a DICOMweb target (JSON username/password or token, mode 0600)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="inference device (default cpu)")
    parser.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace):  # -> medseg.pacs.node.NodeSettings (lazy import)
    """The node's settings from the parsed command line."""
    from medseg.errors import InputError
    from medseg.pacs.node import NodeSettings
    from medseg.resources import resolve

    if not 0 <= args.port < 65536:
        raise InputError(args.port, "not a TCP port", "give --port 1..65535")
    if args.max_attempts < 1 or args.retry_seconds <= 0 or args.quiet_seconds < 0:
        raise InputError(args.out, "--max-attempts must be at least 1, --retry-seconds above 0, "
                         "--quiet-seconds 0 or more", "check the numbers given")
    if args.max_disk_gb is not None and args.max_disk_gb <= 0:
        raise InputError(args.out, "--max-disk-gb must be above 0", "give the budget in GiB, e.g. 50")
    return NodeSettings(
        out_dir=args.out, model_dir=resolve("model", args.model), send_to=args.send_to, ae_title=args.ae_title,
        host=args.host, port=args.port, allow_ae=tuple(args.allow_ae), quiet_seconds=args.quiet_seconds,
        max_disk_gb=args.max_disk_gb, max_attempts=args.max_attempts, backoff_s=args.retry_seconds,
        device=args.device, credentials=args.credentials,
    )


def run(args: argparse.Namespace) -> int:
    """Start the node, log to OUT/node.log too, run until SIGTERM/SIGINT."""
    from medseg.pacs.node import StorageNode

    settings = settings_from_args(args)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    handler = _log_to(settings.out_dir / NODE_LOG, debug=args.debug)
    node = StorageNode(settings)
    try:
        node.start()
        print(f"medseg listen: {settings.ae_title} on {settings.host}:{node.port}, sending to {node.sender.target}; "
              f"log: {settings.out_dir / NODE_LOG}", flush=True)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: node.request_stop())
        node.wait()
    finally:
        node.stop()
        logging.getLogger().removeHandler(handler)
        handler.close()
    return 0


def _log_to(path: Path, debug: bool) -> logging.Handler:
    """medseg's INFO log (DEBUG with --debug) to stderr (through the root handler) and to ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    for existing in root.handlers:
        existing.setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("medseg").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    return handler
