"""Text to speech with espeak-ng, driven through ctypes; no system package needed.

The PyPI wheel ``espeakng-loader`` ships ``libespeak-ng.so`` and the whole
``espeak-ng-data`` folder. The library keeps process-global state, so it is initialised
once, lazily, and every call into it holds :data:`_LOCK`. It also, rarely, spins forever
inside ``espeak_Synth`` (espeak-ng issue #996; seen here once in about a dozen test-suite
runs), and a native call cannot be interrupted: synthesis therefore runs in a child
process (:class:`_SynthProcess`) that is killed and started again when a call outlives
its deadline. Listing languages stays in this process.

Voice names follow espeak-ng: ``language[+variant]``, e.g. ``"en-us"``, ``"en-us+f2"``,
``"fr"``, ``"de+m3"``; variants are the files in ``espeak-ng-data/voices/!v``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import random
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asrtune.data.audio import SAMPLE_RATE, resample, write_audio
from asrtune.errors import AsrtuneError

log = logging.getLogger("asrtune")

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_Synth returns once the callback has had all audio
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_ENDPAUSE = 0x1000  # add a sentence pause at the end (trimmed to _PAD_S later)
_ESPEAK_RATE = 1  # words per minute, 80..450
_ESPEAK_PITCH = 3  # base pitch, 0..100, 50 = normal
_EE_OK = 0

_PAD_S = 0.1  # seconds of silence kept before and after speech
_SILENCE_DB = -40.0  # frames this far below the loudest frame count as silence
_FRAME_S = 0.01  # trimming analysis frame, seconds
_VARIANT_RE = re.compile(r"^[mf]\d+$")  # the plain male/female variants (m1..m8, f1..f5)
_RATE_RANGE = (140, 200)  # words per minute for voice_variants
_PITCH_RANGE = (30, 70)

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakVoice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then 0
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class VoiceStyle:
    """One speaker style: espeak voice name, speed in words per minute, base pitch 0..100."""

    voice: str
    rate_wpm: int
    pitch: int


class _Espeak:
    """The loaded library, its native sample rate (Hz) and the PCM chunks of the current call."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise AsrtuneError("speech synthesis needs: pip install espeakng-loader") from exc
        self.data_path = Path(espeakng_loader.get_data_path())
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare()
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), 0
        )
        if rate <= 0:
            raise AsrtuneError(f"espeak-ng failed to initialise with data at {self.data_path}")
        self.sample_rate: int = rate
        self.chunks: list[np.ndarray] = []
        self._languages: list[str] | None = None
        self._callback = _SynthCallback(self._collect)  # keep a reference: C holds it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _declare(self) -> None:
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))

    def _collect(self, wav: ctypes.Array, n: int, _events: int) -> int:
        if wav and n > 0:
            self.chunks.append(np.frombuffer(ctypes.string_at(wav, 2 * n), dtype=np.int16))
        return 0  # 0 = continue synthesis

    def synth(self, text: str, style: VoiceStyle) -> np.ndarray:
        """``text`` → (n,) int16 PCM at :attr:`sample_rate` Hz. Caller holds :data:`_LOCK`."""
        if self.lib.espeak_SetVoiceByName(style.voice.encode()) != _EE_OK:
            raise AsrtuneError(f"espeak-ng has no voice {style.voice!r}")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, int(style.rate_wpm), 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, int(style.pitch), 0)
        data = text.encode("utf-8")
        self.chunks = []
        flags = _ESPEAK_CHARS_UTF8 | _ESPEAK_ENDPAUSE
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        chunks, self.chunks = self.chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def languages(self) -> list[str]:
        """All language codes the installed voices declare, e.g. ``en``, ``en-us``, ``fr-fr``."""
        if self._languages is None:
            self._languages = self._list_languages()
        return list(self._languages)

    def _list_languages(self) -> list[str]:
        codes: set[str] = set()
        voices = self.lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            codes.update(_parse_languages(voices[i].contents.languages))
            i += 1
        return sorted(codes)


def _parse_languages(address: int | None) -> list[str]:
    """Decode espeak_VOICE.languages: repeated (priority byte, NUL-terminated code), then 0."""
    codes: list[str] = []
    while address and ctypes.string_at(address, 1) != b"\0":
        code = ctypes.string_at(address + 1)  # reads up to the NUL
        codes.append(code.decode("ascii", "replace").lower())
        address += len(code) + 2
    return codes


_LOCK = threading.Lock()
_ENGINE: _Espeak | None = None
_VARIANTS: list[str] | None = None

# Seconds one synthesis call may take before the child is restarted: a sentence takes
# milliseconds, so this only trips on a hang (plus time for very long texts).
_CALL_SECONDS = 10.0
_CALL_SECONDS_PER_CHAR = 0.02
_ATTEMPTS = 3
# Seconds a new child may take to start (a spawned interpreter imports the caller's main
# module first: seconds on a busy machine); not counted against a call's deadline.
_START_SECONDS = 300.0


def _serve(conn: Any) -> None:
    """Child process: say ``("ready",)`` once the library is loaded (or ``("error",
    message)`` if it cannot be), then answer each ``(text, style)`` with ``("ok", pcm,
    rate)`` or ``("error", message)``; stop at ``None``."""
    try:
        engine = _Espeak()
    except AsrtuneError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready",))
    while (request := conn.recv()) is not None:
        try:
            conn.send(("ok", engine.synth(*request), engine.sample_rate))
        except (AsrtuneError, RuntimeError) as exc:
            conn.send(("error", str(exc)))


class _SynthProcess:
    """espeak-ng in a child process, restarted when a call hangs. Caller holds :data:`_LOCK`."""

    def __init__(self, target: Any = _serve) -> None:
        self.target = target
        self.process: Any = None
        self.conn: Any = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the parent's threads
        self.conn, child = context.Pipe()
        self.process = context.Process(target=self.target, args=(child,), daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(_START_SECONDS):
            self._stop()
            raise AsrtuneError(f"espeak-ng did not start within {_START_SECONDS:.0f} s")
        try:
            status, *payload = self.conn.recv()
        except EOFError:
            self._stop()
            raise AsrtuneError("espeak-ng exited while starting") from None
        if status == "error":
            self._stop()
            raise AsrtuneError(payload[0])

    def _stop(self) -> None:
        self.process.kill()
        self.process.join()
        self.process = None

    def synth(self, text: str, style: VoiceStyle) -> tuple[np.ndarray, int]:
        """``text`` → ((n,) int16 PCM, its sample rate in Hz)."""
        deadline = _CALL_SECONDS + _CALL_SECONDS_PER_CHAR * len(text)
        for _ in range(_ATTEMPTS):
            if self.process is None or not self.process.is_alive():
                self._start()
            self.conn.send((text, style))
            if self.conn.poll(deadline):
                try:
                    status, *payload = self.conn.recv()
                except EOFError:  # the child died (a crash in the library)
                    log.warning("espeak-ng exited on %r; restarting it", text[:40])
                    self._stop()
                    continue
                if status == "error":
                    raise AsrtuneError(payload[0])
                return payload[0], payload[1]
            log.warning("espeak-ng hung on %r for %.0f s; restarting it", text[:40], deadline)
            self._stop()
        raise AsrtuneError(f"espeak-ng failed {_ATTEMPTS} times on {text!r}")


_SYNTH_PROCESS = _SynthProcess()


def _engine() -> _Espeak:
    """The process-wide espeak-ng instance. Caller holds :data:`_LOCK`."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


def list_languages() -> list[str]:
    """Sorted espeak-ng language codes usable as voice names (``"en-us"``, ``"fr"``, ...)."""
    with _LOCK:
        return _engine().languages()


def list_variants() -> list[str]:
    """Sorted voice variant names available in ``espeak-ng-data/voices/!v`` (``m1``, ``f2``...)."""
    global _VARIANTS
    if _VARIANTS is None:
        with _LOCK:
            folder = _engine().data_path / "voices" / "!v"
        _VARIANTS = sorted(p.name for p in folder.iterdir() if p.is_file())
    return list(_VARIANTS)


def _check_voice(voice: str) -> None:
    """Raise :class:`AsrtuneError` unless ``voice`` is ``language[+variant]`` espeak knows."""
    language, _, variant = voice.partition("+")
    if language.lower() not in list_languages():
        raise AsrtuneError(
            f"unknown speech language {language!r}; see asrtune.data.synth.list_languages()"
        )
    if variant and variant not in list_variants():
        raise AsrtuneError(f"unknown espeak voice variant {variant!r} in {voice!r}")


def trim_silence(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n,) float32 → (m,) float32: speech with exactly ``_PAD_S`` seconds of silence each side.

    Frames of ``_FRAME_S`` seconds whose RMS is ``_SILENCE_DB`` below the loudest frame are
    silence; everything outside the first..last loud frame is replaced by the padding.
    """
    frame = max(1, int(sample_rate * _FRAME_S))
    n_frames = len(samples) // frame
    pad = np.zeros(int(sample_rate * _PAD_S), dtype=np.float32)
    if n_frames == 0:
        return np.concatenate([pad, samples, pad]).astype(np.float32)
    rms = np.sqrt(np.mean(samples[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
    loud = np.nonzero(rms > rms.max() * 10 ** (_SILENCE_DB / 20))[0]
    if len(loud) == 0:
        return np.concatenate([pad, pad])
    speech = samples[loud[0] * frame : (loud[-1] + 1) * frame]
    return np.concatenate([pad, speech, pad]).astype(np.float32)


def synthesize_style(text: str, style: VoiceStyle) -> np.ndarray:
    """Speak ``text`` in ``style`` → (n,) float32 in [-1, 1] at 16 kHz, silence trimmed."""
    _check_voice(style.voice)
    with _LOCK:
        pcm, native_rate = _SYNTH_PROCESS.synth(text, style)
    audio = resample(pcm.astype(np.float32) / 32768.0, native_rate, SAMPLE_RATE)
    return np.clip(trim_silence(audio, SAMPLE_RATE), -1.0, 1.0)


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50) -> np.ndarray:
    """Speak ``text`` → (n,) float32 in [-1, 1] at 16 kHz (``SAMPLE_RATE``).

    ``voice`` is an espeak-ng name, ``language[+variant]`` (``"en-us+f2"``, ``"de+m3"``);
    ``rate_wpm`` is words per minute (80..450), ``pitch`` the base pitch (0..100).
    Raises :class:`AsrtuneError` for an unknown language or variant.
    """
    return synthesize_style(text, VoiceStyle(voice, rate_wpm, pitch))


def _shuffled_variants(rng: random.Random) -> list[str]:
    """The m*/f* variants, shuffled per gender and interleaved f, m, f, m, ..."""
    plain = [v for v in list_variants() if _VARIANT_RE.match(v)]
    female = [v for v in plain if v.startswith("f")]
    male = [v for v in plain if v.startswith("m")]
    rng.shuffle(female)
    rng.shuffle(male)
    mixed: list[str] = []
    for i in range(max(len(female), len(male))):
        mixed += female[i : i + 1] + male[i : i + 1]
    return mixed


def voice_variants(language: str, n: int, seed: int) -> list[VoiceStyle]:
    """``n`` varied speaker styles for ``language``, deterministic for ``seed``.

    Variants alternate female/male and repeat only after all are used; speed is
    140..200 words per minute and pitch 30..70. Raises :class:`AsrtuneError` for an
    unknown language.
    """
    _check_voice(language)
    rng = random.Random(seed)
    variants = _shuffled_variants(rng) or [""]
    styles = []
    for i in range(n):
        variant = variants[i % len(variants)]
        styles.append(
            VoiceStyle(
                voice=f"{language}+{variant}" if variant else language,
                rate_wpm=rng.randint(*_RATE_RANGE),
                pitch=rng.randint(*_PITCH_RANGE),
            )
        )
    return styles


def _jobs(n_texts: int, n_styles: int, voices_per_text: int) -> list[tuple[int, int]]:
    """(text index, style index) pairs: text i gets styles i*k .. i*k+k-1 (mod n_styles)."""
    return [
        (i, (i * voices_per_text + j) % n_styles)
        for i in range(n_texts)
        for j in range(voices_per_text)
    ]


def synthesize_manifest(
    texts: list[str],
    out_dir: Path,
    language: str = "en",
    voices: int = 4,
    seed: int = 0,
    prefix: str = "utt",
    voices_per_text: int | None = None,
    progress: bool = True,
) -> Path:
    """Speak every text and write ``out_dir/audio/*.wav`` (16 kHz mono) plus a manifest.

    A pool of ``voices`` styles comes from :func:`voice_variants` (``language``, ``seed``).
    ``voices_per_text=None`` speaks each text in every style (``len(texts) * voices``
    clips); ``voices_per_text=k`` gives each text ``k`` styles, cycling over the pool.
    Manifest rows of ``out_dir/manifest.jsonl``: ``id``, ``audio_path`` (relative to
    ``out_dir``), ``text``, ``language`` (primary subtag, ``"en"`` for ``"en-us"``) and
    ``duration`` (seconds). Returns the manifest path.
    """
    if voices < 1:
        raise AsrtuneError(f"voices must be at least 1, got {voices}")
    if voices_per_text is not None and voices_per_text < 1:
        raise AsrtuneError(f"voices_per_text must be at least 1, got {voices_per_text}")
    styles = voice_variants(language, voices, seed)
    per_text = voices if voices_per_text is None else min(voices_per_text, voices)
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, s in tqdm(_jobs(len(texts), voices, per_text), desc="synthesizing", unit="clip",
                     disable=not progress):  # fmt: skip
        rows.append(_write_clip(texts[i], styles[s], out_dir, f"{prefix}{i:05d}_v{s}", language))
    manifest = out_dir / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, manifest)
    return manifest


def _write_clip(text: str, style: VoiceStyle, out_dir: Path, clip_id: str, language: str) -> dict:
    """Synthesize one clip to ``out_dir/audio/<clip_id>.wav``; return its manifest row."""
    audio = synthesize_style(text, style)
    relative = f"audio/{clip_id}.wav"
    write_audio(out_dir / relative, audio, SAMPLE_RATE)
    return {
        "id": clip_id,
        "audio_path": relative,
        "text": text,
        "language": language.split("-")[0].lower(),
        "duration": round(len(audio) / SAMPLE_RATE, 3),
    }
