"""One thin module per CLI command: ``build_parser()`` and ``run(args) -> exit code``."""

COMMANDS = {
    "train": "asrtune.commands.train",
    "eval": "asrtune.commands.eval",
    "transcribe": "asrtune.commands.transcribe",
    "import-ct2": "asrtune.commands.import_ct2",
    "demo": "asrtune.commands.demo",
}
