"""asrtune: fine-tune, evaluate and publish speech-recognition models.

The public API is imported lazily so that ``asrtune --help`` stays fast.
"""

from __future__ import annotations

from asrtune._lazy import lazy_exports

__version__ = "0.1.0"

_API = {
    "train": "asrtune.api",
    "evaluate": "asrtune.api",
    "transcribe": "asrtune.api",
    "export": "asrtune.api",
    "transcribe_segments": "asrtune.api",
    "load_model": "asrtune.models",
    "import_ct2": "asrtune.models.ct2",
    "run_demo": "asrtune.demo",
    "DecodingOptions": "asrtune.inference",
    "FileTranscript": "asrtune.transcripts",
    "Segment": "asrtune.transcripts",
    "push": "asrtune.publish",
    "export_model": "asrtune.publish",
    "merge_adapter": "asrtune.publish",
    "write_demo_app": "asrtune.publish",
    "AsrtuneError": "asrtune.errors",
}

__all__ = sorted(_API)


__getattr__ = lazy_exports(__name__, _API)
