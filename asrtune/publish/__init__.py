"""Publishing a fine-tuned model: Hub push with a model card, a demo Space, LoRA merge, and
exports to CTranslate2 / ONNX.

Family-specific knowledge (usage code, app code, export formats, licence) is the family's
own publish recipe, registered in :mod:`asrtune.models` and looked up through
:mod:`asrtune.publish.families` only. Heavy dependencies are imported where they are used.
"""

from __future__ import annotations

from asrtune._lazy import lazy_exports

_API = {
    "push": "asrtune.publish.upload",
    "publish_files": "asrtune.publish.upload",
    "build_card": "asrtune.publish.card",
    "write_demo_app": "asrtune.publish.demo_app",
    "push_space": "asrtune.publish.demo_app",
    "merge_adapter": "asrtune.publish.merge",
    "export_model": "asrtune.publish.export",
}

__all__ = sorted(_API)


__getattr__ = lazy_exports(__name__, _API)
