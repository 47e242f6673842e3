"""asrtune ui: the whole journey in the browser (record, train, evaluate, try, publish)."""

from __future__ import annotations

import argparse
import os

from asrtune.commands.common import new_parser

AUTH_ENV = "ASRTUNE_UI_AUTH"


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "ui",
        "Start the web UI: record or upload data, check it, train (live loss, WER and log), "
        "compare base and fine-tuned WER, try the model and publish it. Everything is kept "
        "in the project folder, so a reload (or a restart) shows it again. Needs gradio: "
        "pip install 'asrtune[ui]'.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (0.0.0.0: reachable from others)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--auth",
        default=None,
        metavar="USER:PASSWORD",
        help=f"require this login (or set {AUTH_ENV}=USER:PASSWORD, kept out of the process list)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (use --auth)"
    )
    parser.add_argument(
        "--project", default="asrtune-project", metavar="DIR", help="project folder (created)"
    )
    parser.add_argument(
        "--max-file-size",
        "--max_file_size",
        default="200mb",
        help="largest upload accepted (e.g. 50mb, 1gb)",
    )
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        from asrtune.ui.app import build_app, launch
    except ImportError as exc:  # gradio is an extra
        from asrtune.errors import AsrtuneError

        raise AsrtuneError(f"the UI needs gradio: pip install 'asrtune[ui]' ({exc})") from exc
    auth = args.auth or os.environ.get(AUTH_ENV) or None
    if args.share and not auth:
        print("warning: --share without --auth makes the UI public to anyone with the link")
    launch(
        build_app(args.project),
        host=args.host,
        port=args.port,
        auth=auth,
        share=args.share,
        max_file_size=args.max_file_size,
    )
    return 0
