"""Publish recipes of the self-supervised CTC families (``asrtune/models/ssl_ctc.py``):
the model card's usage code and the demo app's decoding, with plain transformers.

Greedy CTC as the model card shows it: ``logits.argmax(-1)`` and the processor's
``batch_decode`` (which collapses repeats and drops the blank, ``[PAD]``), then ``[UNK]``
dropped and spaces tidied, as asrtune's own decoding does; audio longer
than 30 s is decoded in 30-s pieces in the demo app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asrtune.models.family import FamilyRecipe, UsageContext
from asrtune.models.recipes import preamble


def _usage(model_class: str, processor_class: str) -> Callable[[UsageContext], str]:
    def usage(ctx: UsageContext) -> str:
        return (
            preamble(model_class, processor_class, ctx)
            + (
                f'model.load_adapter("{ctx.language_adapter}")  # the MMS language adapter\n'
                if ctx.language_adapter
                else ""
            )
            + "import torch\n\n"
            + 'inputs = processor(audio, sampling_rate=16000, return_tensors="pt")\n'
            + "with torch.no_grad():\n"
            + "    logits = model(**inputs).logits\n"
            + "ids = logits.argmax(-1)  # greedy CTC: batch_decode drops repeats and blanks\n"
            + "text = processor.batch_decode(ids)[0].replace(processor.tokenizer.unk_token, '')\n"
            + "print(' '.join(text.split()))\n"
        )

    return usage


_APP_DECODE = """\
    # greedy CTC over pieces of at most 30 s (attention over a whole long file is costly)
    import torch

    size = 30 * SAMPLE_RATE
    texts = []
    for start in range(0, max(len(samples), 1), size):
        inputs = processor(
            samples[start : start + size], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).to(model.device)
        with torch.no_grad():
            logits = model(**inputs).logits
        text = processor.batch_decode(logits.argmax(-1))[0]  # repeats merged, blanks dropped
        texts.append(" ".join(text.replace(processor.tokenizer.unk_token, "").split()))
    return " ".join(t for t in texts if t)
"""


def _recipe(
    family: str, model_class: str, processor_class: str, licence: str, *ids: str, **more: Any
) -> FamilyRecipe:
    """A CTC encoder's recipe; ``licence`` covers its released checkpoints whose Hub ids
    start with one of ``ids``."""
    return FamilyRecipe(
        family=family,
        model_class=model_class,
        processor_class=processor_class,
        usage=_usage(model_class, processor_class),
        app_decode=_APP_DECODE,
        licence=licence,
        licence_ids=ids,
        **more,
    )


# the licences of the Hub checkpoints (their model cards; WavLM's from Microsoft's unilm
# repository, as its card names none)
WAV2VEC2_RECIPE = _recipe(
    "wav2vec2",
    "Wav2Vec2ForCTC",
    "Wav2Vec2Processor",
    "apache-2.0",
    "facebook/wav2vec2-",
    other_licences={"facebook/mms-": "cc-by-nc-4.0"},
)
WAV2VEC2_BERT_RECIPE = _recipe(
    "wav2vec2_bert", "Wav2Vec2BertForCTC", "Wav2Vec2BertProcessor", "mit", "facebook/w2v-bert-"
)
HUBERT_RECIPE = _recipe(
    "hubert", "HubertForCTC", "Wav2Vec2Processor", "apache-2.0", "facebook/hubert-"
)
WAVLM_RECIPE = _recipe("wavlm", "WavLMForCTC", "Wav2Vec2Processor", "mit", "microsoft/wavlm-")
DATA2VEC_AUDIO_RECIPE = _recipe(
    "data2vec_audio",
    "Data2VecAudioForCTC",
    "Wav2Vec2Processor",
    "apache-2.0",
    "facebook/data2vec-audio-",
)
