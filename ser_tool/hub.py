"""Whether the Hugging Face hub may and can be contacted, decided in seconds.

transformers and huggingface_hub retry a hub they cannot reach, with back-off: on a machine without
network, loading a model by hub id took about a minute before it failed. Every loader of a hub id
(the hf and meralion backends, Whisper, hub datasets) asks `hub_offline_reason` first: when the hub
must not or cannot be contacted it loads from the local cache only, which fails at once when the model
was never downloaded, and the error says why the hub was not asked. `model_source` is that rule for a
loader whose model may be a local folder or a hub id; `not_available` words a load that failed.

Only huggingface_hub is imported here (no torch, no transformers).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ser_tool.errors import Hint, ModelNotAvailableError

__all__ = ["PROBE_TIMEOUT", "ModelSource", "hub_endpoint", "hub_offline_reason", "hub_reachable", "in_hub_cache",
           "looks_like_path", "model_source", "not_available", "not_cached_error", "reset_probe"]

PROBE_TIMEOUT = 3.0  # seconds the reachability check may take, name lookup included
_REMEMBER = 60.0  # seconds a probe's answer is reused (a long-running server may get its network back)

_lock = threading.Lock()
_answers: dict[str, tuple[float, bool]] = {}  # endpoint -> (when, reachable)


def hub_endpoint() -> str:
    """The hub's address as huggingface_hub uses it (HF_ENDPOINT, default https://huggingface.co)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def _probe(endpoint: str, timeout: float) -> bool:
    """True when the endpoint answers HTTP at all (any status): the network path to it works."""
    try:
        from huggingface_hub.utils import get_session

        get_session().head(endpoint, timeout=timeout)  # the hub's own client: its proxies, certificates, headers
        return True
    except Exception:  # noqa: BLE001 - name lookup, connection, TLS, timeout: all mean "cannot be reached"
        return False


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the hub answers within `timeout` seconds. The answer is remembered for a minute.

    The check runs on a helper thread, so a name lookup that hangs (some offline machines wait for a
    DNS server that never answers) cannot hold the caller longer than `timeout`."""
    endpoint = hub_endpoint()
    with _lock:
        known = _answers.get(endpoint)
        if known is not None and time.monotonic() - known[0] < _REMEMBER:
            return known[1]
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(_probe(endpoint, timeout)), name="ser-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    reachable = bool(result and result[0])
    with _lock:
        _answers[endpoint] = (time.monotonic(), reachable)
    return reachable


def reset_probe() -> None:
    """Forget remembered answers (tests; or after the network changed)."""
    with _lock:
        _answers.clear()


def hub_offline_reason(offline: bool) -> str | None:
    """Why the hub is not to be contacted for a load, or None when it may be.

    offline: the caller's own setting (--offline / SER_OFFLINE). Also honoured: huggingface_hub's
    offline mode (HF_HUB_OFFLINE=1), and a hub that does not answer within a few seconds."""
    if offline:
        return "offline mode is on"
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if not hub_reachable():
        return f"the Hugging Face hub ({hub_endpoint()}) cannot be reached from this machine"
    return None


def in_hub_cache(repo_id: str, filename: str = "config.json", *, repo_type: str = "model") -> bool:
    """Whether the local Hugging Face cache holds `filename` of `repo_id` (checked without any network, and
    without importing transformers: a load that cannot work fails in well under a second)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str)
    except Exception:  # noqa: BLE001 - an id the hub would refuse is not in the cache either
        return False


def not_cached_error(repo_id: str) -> FileNotFoundError:
    """The cause to report when `in_hub_cache` said no."""
    from huggingface_hub import constants

    return FileNotFoundError(f"no copy of {repo_id} in the local cache {constants.HF_HUB_CACHE}")


def looks_like_path(model: str) -> bool:
    """True when `model` is meant as a local directory rather than a hub id."""
    return (
        os.path.exists(model)
        or model.startswith((".", "~", os.sep))
        or (os.altsep is not None and os.altsep in model)
        or model.count("/") > 1
        or model.endswith("/")
    )


@dataclass(frozen=True)
class ModelSource:
    """Where a loader reads a model: `where` is the expanded local folder or the hub id as given.

    offline_reason: why the hub is not to be asked (the model then comes from the local cache only), or
    None: a local folder, or a hub id the hub may serve."""

    name: str
    where: str
    local: bool
    offline_reason: str | None

    @property
    def local_only(self) -> bool:
        """What `from_pretrained(..., local_files_only=)` gets: no hub request at all."""
        return self.local or self.offline_reason is not None


def model_source(name: str, offline: bool, *, missing_folder: str,
                 not_cached: Callable[[str, Exception], Exception] | None = None,
                 setting: str | None = "model") -> ModelSource:
    """A model named by a local folder or a hub id, under the offline rules of this module.

    Raises ModelNotAvailableError with `missing_folder` as its text (hinting at `setting`) when `name` reads as
    a path and no such folder exists; and, when the hub must not or cannot be asked and the id is not in the local cache,
    `not_cached(reason, cause)` (default: `not_available`, whose hint names `setting`) - at once, where the
    hub client would retry an unreachable hub for about a minute."""
    folder = os.path.expanduser(name)
    local = os.path.isdir(folder)
    if looks_like_path(name) and not local:
        raise ModelNotAvailableError(missing_folder, setting=setting)
    reason = None if local else hub_offline_reason(offline)
    if reason is not None and not in_hub_cache(name):
        cause = not_cached_error(name)
        raise (not_cached(reason, cause) if not_cached else not_available(name, reason, cause, setting=setting))
    return ModelSource(name, folder if local else name, local, reason)


def not_available(model: str, offline: bool | str, error: Exception, *, setting: str | None = "model",
                  contents: str = "config.json, preprocessor_config.json and the weights") -> ModelNotAvailableError:
    """A ModelNotAvailableError that names the model, where it was looked for, the cause and the fix.

    offline: False (the hub was asked), True (offline mode), or why the hub was not asked (from
    `hub_offline_reason`). setting: the setting that names this model (its Hint: 'model', 'asr_model'),
    which each surface words as its own flag; None: no setting names it (a hint would mislead).
    contents: what a local folder of this kind of model holds, for the fix when it is one."""
    reason = offline if isinstance(offline, str) else ("offline mode is on" if offline else None)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    cause = f"{type(error).__name__}: {first_line}"
    text = str(error)
    hint = None
    local = looks_like_path(model)
    if "trust_remote_code" in text:
        fix = "the checkpoint ships its own Python code; if you trust its authors, allow it to run"
        hint = Hint("trust_remote_code", True)
    elif local:
        fix = (f"check that {os.path.abspath(os.path.expanduser(model))} is a directory holding {contents} "
               "(as written by save_pretrained or `hf download`)")
    elif reason:
        fix = (
            f"{reason[0].upper()}{reason[1:]} and it is not in the local Hugging Face cache: download it once where the "
            f"hub can be reached (`hf download {model}`; downloads are kept in the cache, under HF_HOME), or give a "
            "local directory as the model"
        )
        hint = Hint(setting) if setting else None
    else:
        fix = (
            f"check the spelling of the id and your network; for a gated or private model accept its terms on "
            f"https://huggingface.co/{model} and set HF_TOKEN. Or download it (`hf download {model}`) and pass "
            "the local directory as the model"
        )
        hint = Hint(setting) if setting else None
    mode = "local folder" if local else "offline" if reason else "online"
    return ModelNotAvailableError(f"could not load model {model!r} ({mode}; {cause}). {fix}", hints=[hint] if hint else ())
