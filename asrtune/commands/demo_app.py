"""asrtune demo-app: write a self-contained Gradio app (a Space) for a fine-tuned model."""

from __future__ import annotations

import argparse

from asrtune.commands.common import new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "demo-app",
        "Write a Gradio speech recognition app for a fine-tuned model: app.py, "
        "requirements.txt and a README.md with Space metadata. The app uses transformers "
        "directly (not asrtune); MODEL_ID in its environment overrides the model.",
    )
    parser.add_argument("out", help="output folder of asrtune train (model or LoRA adapter)")
    parser.add_argument("dir", help="folder to write the app to (new or empty)")
    parser.add_argument(
        "--model-id",
        "--model_id",
        default=None,
        help="Hub repo the app loads (pushed with asrtune push); none: a copy of the model "
        "in DIR/model",
    )
    parser.add_argument(
        "--language", default=None, help="the app's language code; none: the training data's"
    )
    parser.add_argument("--title", default=None, help="app title; none: the model's name")
    parser.add_argument(
        "--push-space",
        "--push_space",
        default=None,
        metavar="SPACE",
        help="also upload the app to this Hugging Face Space (created with sdk gradio)",
    )
    parser.add_argument("--private", action="store_true", help="create the Space private")
    return parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrtune.publish.demo_app import push_space, write_demo_app

    app_dir = write_demo_app(
        args.out, args.dir, model_id=args.model_id, title=args.title, language=args.language
    )
    print(app_dir)
    if args.push_space:
        print(push_space(app_dir, args.push_space, private=args.private))
    return 0
