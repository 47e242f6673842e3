"""One thin module per CLI command: ``build_parser()`` and ``run(args) -> exit code``."""

COMMANDS = {
    "train": "asrtune.commands.train",
    "eval": "asrtune.commands.eval",
    "transcribe": "asrtune.commands.transcribe",
    "import-ct2": "asrtune.commands.import_ct2",
    "make-tiny": "asrtune.commands.make_tiny",
    "families": "asrtune.commands.families",
    "data": "asrtune.commands.data",
    "merge": "asrtune.commands.merge",
    "export": "asrtune.commands.export",
    "push": "asrtune.commands.push",
    "demo-app": "asrtune.commands.demo_app",
    "bench": "asrtune.commands.bench",
    "demo": "asrtune.commands.demo",
    "ui": "asrtune.commands.ui",
}
