"""A hub id with no hub: the loaders decide in seconds (HF_HUB_OFFLINE, --offline, or a hub that does not
answer), load a cached copy without asking the hub, and otherwise fail at once with how to get the model,
instead of a minute of retries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("transformers")

from tests.helpers import REPO, SAMPLE  # noqa: E402
from ser_tool import hub as hub_module  # noqa: E402
from ser_tool.backends import load_backend  # noqa: E402
from ser_tool.errors import Hint, ModelNotAvailableError  # noqa: E402
from ser_tool.settings import flag_words  # noqa: E402
from ser_tool.testing import hub_sandbox, make_tiny_hf_classifier  # noqa: E402


def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    """No hub offline mode, but a hub address nothing answers on, and an empty cache under tmp_path."""
    import huggingface_hub.constants as constants

    with hub_sandbox(tmp_path / "sandbox") as sandbox:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
        hub_module.reset_probe()
        yield sandbox
    hub_module.reset_probe()


def cache_model(model_dir, repo_id: str) -> None:
    """Put a saved model into the hub cache as `hf download repo_id` would (snapshot + refs/main)."""
    import huggingface_hub.constants as constants

    repo = os.path.join(constants.HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))
    shutil.copytree(model_dir, os.path.join(repo, "snapshots", "0" * 40))
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write("0" * 40)


def test_an_unreachable_hub_fails_in_seconds_with_how_to_get_the_model(unreachable_hub):
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        load_backend("hf", model="someone/emotion-model")
    assert time.monotonic() - start < 10  # the hub client alone retried for about a minute
    message = str(info.value)
    assert "cannot be reached" in message and "hf download someone/emotion-model" in message
    assert "not in the local Hugging Face cache" in message
    assert Hint("model") in info.value.hints and "--model / SER_MODEL" in info.value.worded(flag_words())


def test_an_unreachable_hub_still_loads_a_cached_model(unreachable_hub, tmp_path):
    cache_model(make_tiny_hf_classifier(tmp_path / "tiny"), "someone/cached-model")
    backend = load_backend("hf", model="someone/cached-model")
    assert backend.model_id == "someone/cached-model"
    assert unreachable_hub.hub_lookups  # resolved through the cache ...
    assert all("127.0.0.1" in c for c in unreachable_hub.connections)  # ... after one refused probe, no download


def test_hf_hub_offline_is_honoured_without_a_probe(tmp_path):
    with hub_sandbox(tmp_path / "sandbox") as sandbox:  # HF_HUB_OFFLINE on
        hub_module.reset_probe()
        assert hub_module.hub_offline_reason(False) == "HF_HUB_OFFLINE is set"
        assert hub_module.hub_offline_reason(True) == "offline mode is on"
        with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE is set"):
            load_backend("hf", model="someone/emotion-model")
    assert sandbox.connections == []


def test_the_reachability_check_is_bounded(monkeypatch):
    hub_module.reset_probe()
    monkeypatch.setattr(hub_module, "_probe", lambda endpoint, timeout: time.sleep(30) or True)  # a name lookup that hangs
    start = time.monotonic()
    assert hub_module.hub_reachable(timeout=0.2) is False
    assert time.monotonic() - start < 2
    monkeypatch.setattr(hub_module, "_probe", lambda endpoint, timeout: pytest.fail("asked again"))
    assert hub_module.hub_reachable() is False  # remembered
    hub_module.reset_probe()


def test_whisper_names_its_own_flag(unreachable_hub):
    from ser_tool.asr import WhisperASR

    with pytest.raises(ModelNotAvailableError) as info:
        WhisperASR("someone/whisper-model").pipeline
    assert "cannot be reached" in str(info.value)
    assert info.value.hints == (Hint("asr_model"),)  # worded by each surface: the CLI says --asr-model
    assert "--asr-model / SER_ASR_MODEL" in info.value.worded(flag_words())


@pytest.mark.slow
def test_ser_analyze_with_no_hub_fails_in_seconds(tmp_path):
    """The command a user types (`ser analyze x.wav --backend hf --model ID`), in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SER_", "HF_"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ser_tool.cli", "analyze", str(SAMPLE), "--backend", "hf", "--model",
                           "superb/wav2vec2-base-superb-er"], capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    assert "cannot be reached" in proc.stderr and "hf download superb/wav2vec2-base-superb-er" in proc.stderr
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    assert elapsed < 30, f"took {elapsed:.0f} s"  # before: 37-60 s of retries


def test_an_unreachable_hub_still_loads_a_cached_whisper_encoder(unreachable_hub, tmp_path):
    """`hf-whisper:HUB_ID` reads the encoder's tensors from the cached snapshot, asking the hub nothing."""
    from ser_tool.representations import load_representation
    from ser_tool.testing import make_tiny_whisper_asr

    cache_model(make_tiny_whisper_asr(tmp_path / "tiny", encoder_layers=2), "someone/whisper-tiny-copy")
    rep = load_representation("hf-whisper:someone/whisper-tiny-copy")
    assert rep.layers == (0, 1) and rep.id.startswith("hf-whisper-")
    assert all("127.0.0.1" in c for c in unreachable_hub.connections)  # one refused probe at most, no download


def test_model_source_is_the_one_rule_for_folder_or_hub_id(unreachable_hub, tmp_path):
    """Every loader of a folder-or-id asks `model_source`: a folder is read as it is, a missing folder is named,
    and an uncached id behind an unreachable hub fails at once with why the hub was not asked."""
    folder = tmp_path / "model"
    folder.mkdir()
    src = hub_module.model_source(str(folder), False, missing_folder="unused")
    assert (src.where, src.local, src.offline_reason, src.local_only) == (str(folder), True, None, True)
    with pytest.raises(ModelNotAvailableError, match="^no folder here") as info:
        hub_module.model_source(str(tmp_path / "nope"), False, missing_folder="no folder here", setting="asr_model")
    assert info.value.hints == (Hint("asr_model"),)
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError, match="could not load model 'someone/x' \\(offline; ") as info:
        hub_module.model_source("someone/x", False, missing_folder="unused")
    assert "cannot be reached" in str(info.value) and info.value.hints == (Hint("model"),)
    assert time.monotonic() - start < 10
    with pytest.raises(KeyError, match="cannot be reached"):  # a loader may word that failure itself
        hub_module.model_source("someone/x", False, missing_folder="unused", not_cached=lambda reason, e: KeyError(reason))
    (folder / "config.json").write_text("{}")
    cache_model(folder, "someone/cached")  # an id in the cache: read from there, never from the hub
    src = hub_module.model_source("someone/cached", False, missing_folder="unused")
    assert src.where == "someone/cached" and src.local_only and "cannot be reached" in src.offline_reason


def test_not_available_says_where_it_looked(tmp_path):
    local = hub_module.not_available(str(tmp_path / "m"), False, OSError("no config"), contents="a config and weights")
    assert "(local folder; OSError: no config)" in str(local) and "holding a config and weights" in str(local)
    online = hub_module.not_available("someone/x", False, OSError("404"))
    assert "(online; OSError: 404)" in str(online) and "HF_TOKEN" in str(online)
    assert "(offline; " in str(hub_module.not_available("someone/x", True, OSError("x")))
