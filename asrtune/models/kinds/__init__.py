"""The kinds of model family: the shared work of every family of a kind.

A family's adapter module (``asrtune/models/<family>.py``) declares its kind (``KIND``)
and imports from its kind's module what it shares; it writes only what differs. A kind's
shared functions find what differs through the family's own module (``loaded.adapter``):
the hooks each kind's docstring lists.

- :mod:`~asrtune.models.kinds.encoder_decoder`: ``AutoModelForSpeechSeq2Seq`` + processor;
  labels = decoder prompt + text + eos; ``model.generate`` (Whisper).
- :mod:`~asrtune.models.kinds.audio_llm`: the processor's ``apply_transcription_request``
  prompt, labels after it, the prompt masked; a causal LM's shifted loss (Voxtral,
  Qwen3-ASR).
- :mod:`~asrtune.models.kinds.ctc`: ``AutoModelForCTC``, the model's own CTC loss (Parakeet
  CTC).
- :mod:`~asrtune.models.kinds.transducer`: the model's own transducer loss (Parakeet TDT).

:mod:`~asrtune.models.kinds.common` holds what every kind uses (a loader from a model and
a processor class, saving).
"""

from __future__ import annotations

from asrtune.models.family import KINDS

__all__ = ["KINDS"]
