"""The offline demo's dataset: synthetic speech from a fictional cloud company's IT help desk.

Sentences come from templates × slot vocabularies full of words Whisper tiny.en has not
seen together: made-up product names (``zentrix gateway``, ``kubevault``), server names
from Norse myth, unusual surnames, spoken ticket numbers and lowercase acronyms. Text is
plain lowercase words (numbers spelled out, no symbols), so references are unambiguous.
Train and test sentences are disjoint but share the vocabulary, so fine-tuning on the
train split visibly lowers WER on the test split.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

from asrtune.data.synth import synthesize_manifest
from asrtune.errors import AsrtuneError

CORPUS_VERSION = 2  # bump when templates, slots or synthesis change: invalidates cached data
DEMO_VOICE_LANGUAGE = "en-us"  # espeak voice; manifests record the language as "en"
GUARD_VOICE_LANGUAGE = "en-gb-x-rp"  # the guard set: British voices, other speakers
MAX_WORDS = 20
#: Non-speech probes (rows without text) added to the test split: silence, noise, hum.
DEMO_PROBES = 12

#: The demo's guard set: everyday English far from the help desk, for ``--guard``.
GUARD_SENTENCES: tuple[str, ...] = (
    "the rain kept falling on the old tin roof all night",
    "she bought fresh bread and a jar of honey at the market",
    "our train was twenty minutes late because of the snow",
    "he planted tomatoes and beans along the garden fence",
    "the children laughed as the puppy chased its own tail",
    "please pass the salt and the pepper to your grandmother",
    "the museum opens at ten and closes early on sundays",
    "we watched the sun go down behind the quiet hills",
    "my brother learned to swim in the lake near our house",
    "a cup of hot tea is the best thing on a cold morning",
    "the library has a new collection of books about birds",
    "they painted the kitchen a pale shade of yellow",
    "the river was too deep to cross without a boat",
    "she wrote a long letter to her friend in the country",
    "the baker wakes up before dawn to light the oven",
    "he forgot his umbrella and came home soaking wet",
    "the orchestra played a gentle song for the crowd",
    "we need eggs milk and butter for the pancakes",
    "the cat sleeps on the warm windowsill every afternoon",
    "a strong wind blew the leaves across the empty street",
    "the teacher read a story about a brave little fox",
    "our neighbors invited us to dinner on friday evening",
    "the mountain path was steep and covered with stones",
    "he fixed the bicycle chain with an old pair of pliers",
    "the market square fills with music every summer night",
    "she carried the heavy basket of apples up the hill",
    "the clock in the hall strikes twelve at midnight",
    "we found a small shell on the beach near the pier",
    "the farmer counted his sheep before the storm arrived",
    "a bright moon rose over the calm water of the bay",
)

SLOTS: dict[str, tuple[str, ...]] = {
    "person": (
        "ingrid halvorsen", "kwame asante", "priya ramaswamy", "tobias kowalczyk",
        "siobhan oduya", "mateo villasenor", "yuki tanabe", "bartholomew quist",
        "ngozi adeyemi", "lars fjeldstad", "anouk verbeek", "desmond okoro",
        "greta lindqvist", "rafael abernathy", "imogen thackeray",
    ),
    "product": (
        "zentrix gateway", "kubevault", "orbilux dashboard", "quillsync", "nimbara mail",
        "tessellink", "vortaq backup", "pylonix", "cobaltdesk", "heliograph monitor",
        "strata ledger", "lumora chat", "ferrovia portal", "axiom relay", "brightwell vpn",
    ),
    "server": (
        "the skadi cluster", "node fenrir", "the yggdrasil database", "the mimir cache",
        "the bifrost load balancer", "the odin build farm", "the heimdall proxy",
        "the valkyrie queue", "the sleipnir storage pool", "the tyr replica",
        "the freya web tier", "the loki test box", "the njord backup vault",
        "the baldur api server", "the idun scheduler",
    ),
    "region": (
        "the reykjavik region", "the tromso datacenter", "the lisbon office",
        "the osaka region", "the nairobi office", "the calgary datacenter", "the tallinn office",
        "the cork region", "the perth datacenter", "the valparaiso office", "the gdansk region",
        "the lagos office", "the bergen datacenter", "the tbilisi office",
        "the montevideo region",
    ),
    "error": (
        "a certificate mismatch", "a stale session token", "a quota exceeded warning",
        "a kernel panic", "a checksum failure", "a deadlock in the queue",
        "an expired license key", "a dns timeout", "a split brain condition", "a memory leak",
        "a failed handshake", "a corrupted snapshot", "a permission denied error",
        "an oauth redirect loop", "a throttling alert",
    ),
    "action": (
        "rotate the credentials", "flush the dns cache", "reissue the certificate",
        "roll back the deployment", "rebuild the search index", "drain the node",
        "reset the multifactor token", "restore the nightly snapshot", "patch the hypervisor",
        "raise the storage quota", "reimage the laptop", "resync the mailbox",
        "purge the message queue", "renew the wildcard certificate", "escalate to tier two",
    ),
    "time": (
        "before nine thirty", "by friday afternoon", "tonight at eleven",
        "first thing tomorrow", "within the next hour", "after the maintenance window",
        "before the quarterly audit", "by end of day", "on monday morning",
        "at half past four", "before the standup", "during the lunch break",
        "by noon on thursday", "over the weekend", "right after the release",
    ),
    "number": (
        "four one seven two", "eight zero three nine", "two two nine one", "five zero five eight",
        "nine four three zero", "six one one seven", "seven eight two four",
        "one three three six", "three nine zero two", "eight eight one five",
        "four zero six nine", "two seven seven three", "five one four eight",
        "nine nine two zero", "six three eight one",
    ),
    "team": (
        "the payroll team", "the design studio", "the legal department", "the warehouse crew",
        "the night shift", "the finance group", "the helpdesk interns", "the security office",
        "the marketing squad", "the data science group", "the field engineers",
        "the reception desk", "the procurement team", "the compliance office",
        "the executive assistants",
    ),
    "device": (
        "conference room tablet", "docking station", "badge reader", "label printer",
        "wireless headset", "loaner laptop", "kiosk terminal", "hardware token",
        "second monitor", "desk phone", "barcode scanner", "smart whiteboard",
        "travel router", "webcam", "thin client",
    ),
}  # fmt: skip

#: The demo's domain terms (``--terms``): its product names and the Norse names of its
#: systems, as the transcripts spell them.
DEMO_TERMS: tuple[str, ...] = (
    *SLOTS["product"],
    "skadi", "fenrir", "yggdrasil", "mimir", "bifrost", "odin", "heimdall", "valkyrie",
    "sleipnir", "tyr", "freya", "loki", "njord", "baldur", "idun",
)  # fmt: skip


def write_demo_terms(path: Path) -> Path:
    """Write :data:`DEMO_TERMS` as a term file (one per line) to ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{term}\n" for term in DEMO_TERMS), encoding="utf-8")
    return path


TEMPLATES: tuple[str, ...] = (
    "{person} reports {error} on {server} and needs help {time}",
    "please {action} on {server} {time}",
    "ticket {number} says {product} is down for {team}",
    "can someone {action} for {person} {time}",
    "{product} shows {error} whenever {team} logs in",
    "we moved {server} to {region} {time}",
    "{person} asked us to {action} before anyone touches {product}",
    "the alert for ticket {number} came from {server} in {region}",
    "{team} lost access to {product} after {error}",
    "escalate ticket {number} to {person} if {product} fails again",
    "i will {action} and then restart {product}",
    "the {device} of {person} keeps dropping off {product}",
    "{server} in {region} threw {error} {time}",
    "remind {person} to {action} {time}",
    "the migration of {product} to {region} is scheduled {time}",
    "{team} needs a new {device} {time}",
    "{person} opened ticket {number} about {error}",
    "we traced {error} back to {server}",
    "does {product} still run on {server} or did it move to {region}",
    "{person} from {team} says the {device} will not pair with {product}",
    "before we {action} let us check {server} for {error}",
    "the nightly job on {server} failed with {error}",
    "the {product} license for {team} is due for renewal {time}",
    "please close ticket {number} once {person} confirms {product} works",
    "{team} in {region} cannot reach {server}",
    "to fix {error} we had to {action}",
    "{person} will {action} {time} so expect a short outage of {product}",
    "the dashboard for {server} shows {error} again",
    "ship a replacement {device} to {person} in {region}",
    "ticket {number} is waiting on {team} to approve the change",
    "after we {action} {product} came back online",
    "is {person} on call {time} or should i page {team}",
    "{product} and {server} both reported {error} at the same time",
    "the {device} in {region} needs a firmware update {time}",
    "log a new ticket for {team} because {product} is slow on {server}",
    "{person} approved the request to {action} on {server}",
    "we saw {error} on ticket {number} again",
    "hand ticket {number} over to {person} when you {action}",
    "the {device} used by {team} was wiped after {error}",
    "{person} says {product} in {region} is working again",
)

_SLOT_RE = re.compile(r"\{(\w+)\}")


class _Decks:
    """Per-slot shuffled decks: every term of a slot is drawn once before any repeats."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.decks: dict[str, list[str]] = {}

    def draw(self, slot: str) -> str:
        deck = self.decks.setdefault(slot, [])
        if not deck:
            deck.extend(SLOTS[slot])
            self.rng.shuffle(deck)
        return deck.pop()

    def fill(self, template: str) -> str:
        """Replace every ``{slot}`` in ``template`` with the next term of that slot's deck."""
        return _SLOT_RE.sub(lambda m: self.draw(m.group(1)), template)


def demo_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct help-desk sentences (6..20 words), deterministic for ``seed``.

    Templates are used round-robin in a seeded order, so every template appears about
    ``n / len(TEMPLATES)`` times; slot terms come from shuffled decks, so each term of a
    slot is used before any term repeats (the train split covers the test vocabulary).
    """
    rng = random.Random(seed)
    order = list(TEMPLATES)
    rng.shuffle(order)
    decks = _Decks(rng)
    seen: dict[str, None] = {}  # insertion-ordered set
    attempts = 0
    while len(seen) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise AsrtuneError(f"cannot make {n} distinct demo sentences")
        sentence = decks.fill(order[attempts % len(order)])
        if len(sentence.split()) <= MAX_WORDS:
            seen.setdefault(sentence)
    return list(seen)


def _params(n_train: int, n_test: int, seed: int, voices: int, probes: int, guard: int) -> dict:
    return {
        "version": CORPUS_VERSION,
        "language": DEMO_VOICE_LANGUAGE,
        "n_train": n_train,
        "n_test": n_test,
        "probes": probes,
        "guard": guard,
        "seed": seed,
        "voices": voices,
    }


def _complete(manifest: Path, n_rows: int) -> bool:
    """True when ``manifest`` has ``n_rows`` rows whose audio files all exist."""
    if not manifest.is_file():
        return False
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return len(rows) == n_rows and all((manifest.parent / r["audio_path"]).is_file() for r in rows)


def _cached(out_dir: Path, params: dict) -> bool:
    """True when ``out_dir`` already holds a complete dataset built with ``params``."""
    params_file = out_dir / "params.json"
    if not params_file.is_file():
        return False
    try:
        if json.loads(params_file.read_text()) != params:
            return False
    except json.JSONDecodeError:
        return False
    return (
        _complete(out_dir / "train" / "manifest.jsonl", params["n_train"])
        and _complete(out_dir / "test" / "manifest.jsonl", params["n_test"] + params["probes"])
        and (
            not params["guard"] or _complete(out_dir / "guard" / "manifest.jsonl", params["guard"])
        )
    )


def make_demo_dataset(
    out_dir: Path,
    n_train: int = 240,
    n_test: int = 100,
    seed: int = 0,
    voices: int = 4,
    probes: int = DEMO_PROBES,
    guard_size: int = len(GUARD_SENTENCES),
) -> tuple[Path, Path]:
    """Write the demo's train/test speech under ``out_dir``; return both manifest paths.

    ``out_dir/train/manifest.jsonl`` gets ``n_train`` clips and ``out_dir/test/...``
    ``n_test`` clips (16 kHz wav, one voice per sentence, cycling over ``voices`` espeak
    styles; the test pool is drawn with ``seed + 1``, so voices may overlap) plus
    ``probes`` non-speech probes (rows with empty text). Sentences are distinct, so the
    splits are disjoint. ``out_dir/guard/manifest.jsonl`` is the guard set of
    ``guard_size`` sentences (see :func:`make_guard_set`). A complete dataset already in
    ``out_dir`` with the same parameters (``params.json``) is reused as is.
    """
    out_dir = Path(out_dir)
    params = _params(n_train, n_test, seed, voices, probes, guard_size)
    train_dir, test_dir = out_dir / "train", out_dir / "test"
    if _cached(out_dir, params):
        return train_dir / "manifest.jsonl", test_dir / "manifest.jsonl"
    (out_dir / "params.json").unlink(missing_ok=True)
    for split_dir in (train_dir, test_dir, out_dir / "guard"):
        shutil.rmtree(split_dir / "audio", ignore_errors=True)
    sentences = demo_sentences(n_train + n_test, seed)
    common = {"language": DEMO_VOICE_LANGUAGE, "voices": voices, "voices_per_text": 1}
    train = synthesize_manifest(sentences[:n_train], train_dir, seed=seed, prefix="train", **common)
    test = synthesize_manifest(
        sentences[n_train:], test_dir, seed=seed + 1, prefix="test", **common
    )
    add_probes(test, probes, seed)
    if guard_size:
        make_guard_set(out_dir / "guard", seed, voices, guard_size)
    (out_dir / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    return train, test


def make_guard_set(
    out_dir: Path, seed: int = 0, voices: int = 4, size: int = len(GUARD_SENTENCES)
) -> Path:
    """The first ``size`` of :data:`GUARD_SENTENCES` spoken with
    :data:`GUARD_VOICE_LANGUAGE` voices (other speakers than the train and test splits'),
    one voice per sentence; its manifest."""
    return synthesize_manifest(
        list(GUARD_SENTENCES[:size]),
        out_dir,
        language=GUARD_VOICE_LANGUAGE,
        voices=voices,
        seed=seed + 1000,
        prefix="guard",
        voices_per_text=1,
    )


def add_probes(manifest: Path, count: int, seed: int) -> None:
    """Append ``count`` non-speech probes to ``manifest``: rows with empty text whose
    audio (2-10 s, in the manifest's ``audio/``) is each kind of generated non-speech in
    turn (silence, noise, hum) at a random level."""
    import numpy as np

    from asrtune.data.audio import write_audio
    from asrtune.data.nonspeech import nonspeech_clips

    rows = []
    for i, clip in enumerate(nonspeech_clips(count, seed, max_seconds=10.0)):
        name = f"audio/probe{i:02d}_{clip.kind}.wav"
        audio = clip.audio()
        pad = np.zeros(max(0, 32000 - len(audio)), np.float32)  # at least 2 s
        write_audio(manifest.parent / name, np.concatenate([audio, pad]))
        rows.append({"id": f"probe{i:02d}", "audio_path": name, "text": "", "language": "en"})
    with open(manifest, "a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
