"""Model choices of the Train tab, and the UI's cache of loaded models for transcription and
evaluation."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from asrtune.models import FAMILIES, LoadedModel, load_model

LOCAL = "Local folder"
#: The family choices of the Train tab: each registered family's label, then a local folder.
FAMILY_CHOICES = (*(family.label for family in FAMILIES.values()), LOCAL)
#: The family chosen when nothing is (the first registered).
DEFAULT_FAMILY = next(iter(FAMILIES.values())).label
#: The registered family (its name) behind each label.
FAMILY_NAMES = {family.label: family.name for family in FAMILIES.values()}
#: What still trains with the encoder frozen, per family (the registration says it).
FREEZE_INFO = "; ".join(
    f"{family.label}: {family.trains_when_frozen}" for family in FAMILIES.values()
)

#: Size shown → Hub id, per family label (from each family's registration).
SIZES: dict[str, dict[str, str]] = {
    family.label: dict(family.sizes) for family in FAMILIES.values() if family.sizes
}
DEFAULT_SIZE = {
    family.label: family.default_size for family in FAMILIES.values() if family.default_size
}


def resolve_model(family: str, size: str | None, folder: str | None) -> str:
    """The ``model`` option: a Hub id for a family + size, else the local folder ('' if none)."""
    if family in SIZES:
        return SIZES[family].get(size or "", "")
    return (folder or "").strip()


_REACHABILITY: dict[str, tuple[float, str | None]] = {}  # model → (checked at, answer)
_REACHABILITY_SECONDS = 60.0


def hub_model_unreachable(model: str, timeout: float = 5.0) -> str | None:
    """Why a Hub model cannot be used here, said before a check or a run fails on it: not
    downloaded yet, and the Hub offline (HF_HUB_OFFLINE) or not answering within
    ``timeout`` seconds (DNS included). None when ``model`` is a local folder, already in
    the Hugging Face cache, or the Hub answers at all (a 401/404 is the loader's to
    explain). Answers are remembered for a minute."""
    import time

    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError

    if not model or Path(model).expanduser().exists():
        return None
    try:
        if isinstance(try_to_load_from_cache(model, "config.json"), str):
            return None
    except HFValidationError:  # not a Hub id: loading it will say why
        return None
    checked = _REACHABILITY.get(model)
    if checked is None or time.monotonic() - checked[0] > _REACHABILITY_SECONDS:
        answer = (
            None
            if _hub_answers(model, timeout)
            else (
                f"{model} is not downloaded and the Hugging Face Hub cannot be reached from here: "
                "choose Model family: Local folder, then a downloaded model's folder or "
                f"Make a tiny random {DEFAULT_FAMILY}"
            )
        )
        checked = _REACHABILITY[model] = (time.monotonic(), answer)
    return checked[1]


def _hub_answers(model: str, timeout: float) -> bool:
    """Whether the Hub (HF_ENDPOINT, the user's token and proxies) answers about ``model``
    within ``timeout`` seconds, whatever the answer."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Late

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    def ask() -> bool:
        try:
            HfApi().model_info(model, timeout=timeout)
        except HfHubHTTPError:  # an HTTP answer (401, 404...): the Hub is there
            return True
        except Exception:  # offline mode, DNS, connection, timeout: no answer
            return False
        return True

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(ask).result(timeout=timeout)
    except Late:
        return False
    finally:
        pool.shutdown(wait=False)


def hub_dataset_unreachable(name: str, timeout: float = 5.0) -> str | None:
    """Why the Hub dataset ``name`` cannot be read here: the Hub says it does not exist, or
    it is not downloaded and the Hub cannot be reached. None for a local dataset folder, a
    downloaded dataset, or one the Hub knows (a private or gated one: the loader explains)."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as Late

    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if Path(name).expanduser().is_dir() or _dataset_downloaded(name):
        return None

    def ask() -> str | None:
        try:
            HfApi().dataset_info(name, timeout=timeout)
        except RepositoryNotFoundError:
            return f"no dataset {name} on the Hugging Face Hub"
        except HfHubHTTPError:  # 401, 403...: it is there, loading will say what is wrong
            return None
        except Exception:  # offline mode, DNS, connection, timeout
            return f"{name} is not downloaded and the Hugging Face Hub cannot be reached"
        return None

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(ask).result(timeout=timeout)
    except Late:
        return f"{name} is not downloaded and the Hugging Face Hub did not answer"
    finally:
        pool.shutdown(wait=False)


def _dataset_downloaded(name: str) -> bool:
    """Whether ``datasets`` or the Hub cache holds the dataset ``name``."""
    from datasets import config
    from huggingface_hub import scan_cache_dir

    if (Path(config.HF_DATASETS_CACHE) / name.replace("/", "___")).is_dir():
        return True
    try:
        cached = scan_cache_dir()
    except Exception:  # no cache folder yet
        return False
    return any(r.repo_type == "dataset" and r.repo_id == name for r in cached.repos)


def describe_model(model: str) -> tuple[str, str | None, str]:
    """(family, size, folder) for a stored ``model`` option: the inverse of resolve_model."""
    for family, sizes in SIZES.items():
        for size, hub_id in sizes.items():
            if hub_id == model:
                return family, size, ""
    if model:
        return LOCAL, None, model
    return DEFAULT_FAMILY, DEFAULT_SIZE.get(DEFAULT_FAMILY), ""


class ModelCache:
    """Loaded models by source, at most ``size`` of them, least recently used dropped first.

    Two requests for a model not loaded yet wait for one load; requests for different models
    load side by side. Inference on a cached model runs concurrently (no lock around it).
    A local folder is reloaded when its files change.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._models: OrderedDict[tuple[str, float], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, float], threading.Lock] = {}

    @staticmethod
    def _key(source: str) -> tuple[str, float]:
        path = Path(source).expanduser()
        if not path.exists():
            return source, 0.0
        stamp = max(
            (p.stat().st_mtime for p in path.iterdir() if p.is_file()), default=path.stat().st_mtime
        )
        return str(path.resolve()), stamp

    def get(self, source: str) -> LoadedModel:
        key = self._key(source)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            loaded = load_model(source)
            with self._lock:
                self._models[key] = loaded
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
            return loaded

    def __len__(self) -> int:
        return len(self._models)
