"""Whether the Hugging Face hub may and can be contacted, decided in seconds.

transformers and huggingface_hub retry a hub they cannot reach, with back-off: on a machine without
network, loading a model by hub id took about a minute before it failed. Every loader of a hub id
(the hf and meralion backends, Whisper, hub datasets) asks `hub_offline_reason` first: when the hub
must not or cannot be contacted it loads from the local cache only, which fails at once when the model
was never downloaded, and the error says why the hub was not asked.

Only huggingface_hub is imported here (no torch, no transformers).
"""

from __future__ import annotations

import threading
import time

__all__ = ["PROBE_TIMEOUT", "hub_endpoint", "hub_offline_reason", "hub_reachable", "in_hub_cache", "not_cached_error",
           "reset_probe"]

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
