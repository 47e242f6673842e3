"""LoRA adapter folder → standalone model (weights + processor + generation config)."""

from __future__ import annotations

import logging
from pathlib import Path

from asrtune.errors import AsrtuneError
from asrtune.models import adapter_base, load_model

log = logging.getLogger("asrtune")


def merge_adapter(out: str | Path, merged: str | Path, allow_pickle: bool = False) -> Path:
    """Merge the LoRA adapter in ``out`` into its base and save the result to ``merged``.

    ``merged`` gets safetensors weights, config.json, generation_config.json and the
    processor saved with the adapter; the model computes what the adapter model computes.
    """
    out, merged = Path(out), Path(merged)
    if adapter_base(str(out)) is None:
        raise AsrtuneError(f"{out} is not a LoRA adapter folder (no adapter_config.json)")
    if merged.exists() and (not merged.is_dir() or any(merged.iterdir())):
        raise AsrtuneError(f"{merged} already exists and is not empty")
    # loaded as for training (the base's own precision, on the CPU), as `train --merge`
    # merges: loading for inference would merge in the GPU's half precision
    loaded = load_model(str(out), for_training=True, allow_pickle=allow_pickle)
    loaded.model = loaded.model.merge_and_unload()
    merged.mkdir(parents=True, exist_ok=True)
    loaded.adapter.save(loaded, merged)
    log.info("merged %s onto %s → %s", out, loaded.base, merged)
    return merged
