"""An offline chat model on llama.cpp (the `xllamacpp` binary wheel): any GGUF file as a LangChain
chat model, plus what multiple-choice evaluation needs from it (a grammar that allows only the option
letters, and the letters' log-probabilities). Only this module imports xllamacpp.

    model = LlamaCppChatModel(model_path=str(qwen_gguf()), n_threads=1)
    model.invoke("How are you?").text
    model.choose_letter(messages, "ABCD")        # -> agents.choice.LetterChoice

Loaded servers are shared per (file, context, threads) in this process, so an answering model and a
judge built from the same file load it once. Load time and tokens/s go to stderr: the load time when
the model loads, the run's token rates when the process ends.
"""

from __future__ import annotations

import atexit
import importlib.util
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from agents.choice import LetterChoice, letter_grammar, letter_logprobs, normalise_letters
from agents.errors import AgentError, ChatModelError
from agents.gguf_parts import QWEN_CODER_1_5B, installed_parts_model, parts_installed

__all__ = ["DEFAULT_THREADS", "LlamaCppChatModel", "RunStats", "default_threads", "have_xllamacpp", "qwen_gguf",
           "qwen_installed"]

XLLAMACPP_HINT = "pip install -e '.[local-llm]' (or: pip install xllamacpp)"
# Half the CPUs (hyper-threads share a core's arithmetic), at most 4: 1 on a 2-core machine. Measured on
# 2 cores shared with other jobs (README, "Offline chat model"): 2 threads ran no faster than 1, and with
# llama.cpp's default spin-waiting (poll 50) one run of 2 threads collapsed to 0.3 tok/s.
DEFAULT_THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
TOP_LOGPROBS = 20  # alternatives read at the answer position: enough to find every option letter


def have_xllamacpp() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def qwen_installed() -> bool:
    """True when xllamacpp and all the Qwen2.5-Coder-1.5B part packages are installed (nothing imported)."""
    return have_xllamacpp() and parts_installed(QWEN_CODER_1_5B)


def qwen_gguf(cache_dir: str | Path | None = None) -> Path:
    """Qwen2.5-Coder-1.5B-Instruct Q4_K_M, joined from its installed part packages into `cache_dir`
    (default ~/.cache/ser-tool/models) on first use and verified by sha256."""
    return installed_parts_model(QWEN_CODER_1_5B, cache_dir)


@dataclass
class RunStats:
    """Token counts and time spent by one loaded model in this process."""

    load_s: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    prompt_s: float = 0.0
    cached_tokens: int = 0
    generated_tokens: int = 0
    generation_s: float = 0.0

    @property
    def prompt_tps(self) -> float:
        return self.prompt_tokens / self.prompt_s if self.prompt_s > 0 else math.nan

    @property
    def generation_tps(self) -> float:
        if not self.generated_tokens or self.generation_s <= 0:
            return math.nan
        return self.generated_tokens / self.generation_s

    def add(self, timings: dict[str, Any], usage: dict[str, Any]) -> None:
        self.calls += 1
        self.prompt_tokens += int(timings.get("prompt_n") or 0)
        self.prompt_s += float(timings.get("prompt_ms") or 0.0) / 1000
        self.cached_tokens += int(timings.get("cache_n") or 0)
        # The first token is sampled from the prompt pass; each further one costs a decoding step.
        self.generated_tokens += max(int(timings.get("predicted_n") or usage.get("completion_tokens") or 0) - 1, 0)
        self.generation_s += float(timings.get("predicted_ms") or 0.0) / 1000

    def summary(self) -> str:
        text = (f"load {self.load_s:.1f} s; {self.calls} calls; prompt {self.prompt_tokens} tokens at "
                f"{self.prompt_tps:.1f} tok/s (+{self.cached_tokens} reused from the cache)")
        if self.generated_tokens:  # answers of one token (a letter) cost no decoding step
            text += f"; generation {self.generation_tps:.1f} tok/s ({self.generated_tokens} tokens)"
        return text


@dataclass
class _Loaded:
    server: Any
    lock: threading.Lock
    stats: RunStats
    name: str


_LOADED: dict[tuple, _Loaded] = {}
_LOADED_LOCK = threading.Lock()


class LlamaCppChatModel(BaseChatModel):
    """A GGUF chat model run by llama.cpp (xllamacpp) on the CPU; the file's chat template formats the
    messages. Loaded on first use. Extra call options: `grammar` (GBNF), `max_tokens`, `stop`. No tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str = Field(description="A .gguf model file.")
    temperature: float = 0.0
    max_new_tokens: int = 256
    n_ctx: int = Field(8192, description="Context length in tokens (prompt + answer).")
    n_threads: int = Field(DEFAULT_THREADS, ge=1, description="CPU threads for prompt and generation.")
    poll: int = Field(0, ge=0, le=100, description="How long idle worker threads spin (llama.cpp's --poll, 0..100) "
                                                   "before sleeping; 0 keeps busy machines from stalling.")
    seed: int = 0
    report: bool = Field(True, description="Print the load time and the run's tokens/s to stderr.")

    _loaded: _Loaded | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "ser-tool-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens,
                "n_ctx": self.n_ctx}

    @property
    def stats(self) -> RunStats:
        """Load time and token counts so far (of the shared loaded model)."""
        return self.load().stats

    def load(self) -> _Loaded:
        """The loaded llama.cpp server, loading it on the first call (shared by equal settings)."""
        if self._loaded is None:
            path = Path(self.model_path).expanduser()
            key = (str(path.resolve()), self.n_ctx, self.n_threads, self.poll, self.seed)
            with _LOADED_LOCK:
                if key not in _LOADED:
                    _LOADED[key] = self._load(path)
                self._loaded = _LOADED[key]
        return self._loaded

    def _load(self, path: Path) -> _Loaded:
        if not have_xllamacpp():
            raise AgentError(f"running {path.name} needs llama.cpp: {XLLAMACPP_HINT}")
        if not path.is_file():
            raise AgentError(f"local model {path} not found")
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.n_ctx
        params.n_parallel = 1
        params.warmup = False
        params.verbosity = -1  # llama.cpp's own log would flood stderr
        params.sampling.seed = self.seed
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = self.n_threads
            cpu.poll = self.poll
        start = time.perf_counter()
        try:
            server = xllamacpp.Server(params)
        except Exception as e:  # noqa: BLE001 - xllamacpp says only "Failed to init server"
            raise ChatModelError(f"llama.cpp could not load {path} ({e}); is it a GGUF model file?") from e
        stats = RunStats(load_s=time.perf_counter() - start)
        loaded = _Loaded(server=server, lock=threading.Lock(), stats=stats, name=path.name)
        if self.report:
            print(f"[local llm] {path.name} loaded in {stats.load_s:.1f} s ({self.n_threads} thread"
                  f"{'s' if self.n_threads > 1 else ''})", file=sys.stderr, flush=True)
            atexit.register(_report_at_exit, loaded)
        return loaded

    def complete(self, messages: list[BaseMessage] | list[dict[str, str]], **request: Any) -> dict[str, Any]:
        """One OpenAI-style chat completion: `request` adds fields (max_tokens, grammar, logprobs,
        top_logprobs, stop, temperature). Returns the response dict; errors become ChatModelError."""
        loaded = self.load()
        body = {"messages": [m if isinstance(m, dict) else _message(m) for m in messages],
                "temperature": self.temperature, "max_tokens": self.max_new_tokens, "seed": self.seed, **request}
        with loaded.lock:
            try:
                response = loaded.server.handle_chat_completions(body)
            except Exception as e:  # noqa: BLE001
                raise ChatModelError(f"llama.cpp failed on the request ({type(e).__name__}: {e})") from e
        if not isinstance(response, dict) or "error" in response or not response.get("choices"):
            error = response.get("error", response) if isinstance(response, dict) else response
            message = error.get("message", error) if isinstance(error, dict) else error
            hint = "; raise n_ctx (e.g. chat_model('local', n_ctx=16384))" if "context" in str(message) else ""
            raise ChatModelError(f"llama.cpp refused the request: {message}{hint}")
        loaded.stats.add(response.get("timings") or {}, response.get("usage") or {})
        return response

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request: dict[str, Any] = {
            "max_tokens": int(kwargs.pop("max_tokens", kwargs.pop("max_new_tokens", self.max_new_tokens))),
            "temperature": float(kwargs.pop("temperature", self.temperature) or 0.0),
        }
        if stop:
            request["stop"] = list(stop)
        for name in ("grammar", "logprobs", "top_logprobs", "seed"):
            if name in kwargs:
                request[name] = kwargs.pop(name)
        response = self.complete(messages, **request)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        message = AIMessage(
            content=((choice.get("message") or {}).get("content") or "").strip(),
            response_metadata={"model_name": Path(self.model_path).name, "finish_reason": choice.get("finish_reason"),
                               "logprobs": choice.get("logprobs"), "timings": response.get("timings")},
            usage_metadata=UsageMetadata(input_tokens=int(usage.get("prompt_tokens", 0)),
                                         output_tokens=int(usage.get("completion_tokens", 0)),
                                         total_tokens=int(usage.get("total_tokens", 0))),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def choose_letter(self, messages: list[BaseMessage], letters: str | list[str], *,
                      free_tokens: int = 0) -> LetterChoice:
        """One option letter, always: decoded under a grammar that allows only `letters`, with the
        letters' log-probabilities at that position (the model's unconstrained distribution). With
        free_tokens > 0 the unconstrained answer (that many tokens at most) is kept as `free_text`."""
        allowed = normalise_letters(letters)
        free_text = None
        if free_tokens > 0:  # first: the grammar call then reuses the prompt from llama.cpp's cache
            free = self.complete(messages, max_tokens=free_tokens, temperature=0.0)
            free_text = ((free["choices"][0].get("message") or {}).get("content") or "").strip()
        response = self.complete(messages, max_tokens=1, temperature=0.0, grammar=letter_grammar(allowed),
                                 logprobs=True, top_logprobs=TOP_LOGPROBS)
        choice = response["choices"][0]
        picked = ((choice.get("message") or {}).get("content") or "").strip()
        if picked not in allowed:
            raise ChatModelError(f"llama.cpp ignored the letter grammar (answered {picked!r}); update xllamacpp")
        content = (choice.get("logprobs") or {}).get("content") or []
        logprobs = letter_logprobs(content[0].get("top_logprobs") or [] if content else [], allowed)
        return LetterChoice(letter=picked, logprobs=logprobs, free_text=free_text, method="grammar")


def default_threads(environ: Mapping[str, str] | None = None) -> int:
    """Thread count for the local model: SER_LLM_THREADS when set (read where a "local" spec becomes a
    model, as provider specs read their API keys), else DEFAULT_THREADS."""
    value = (os.environ if environ is None else environ).get("SER_LLM_THREADS", "").strip()
    if not value:
        return DEFAULT_THREADS
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise AgentError(f"SER_LLM_THREADS must be a whole number >= 1, got {value!r}")
    return threads


def _message(m: BaseMessage) -> dict[str, str]:
    role = {"human": "user", "ai": "assistant", "system": "system"}.get(m.type, "user")
    return {"role": role, "content": m.text if hasattr(m, "text") else str(m.content)}


def _report_at_exit(loaded: _Loaded) -> None:
    if loaded.stats.calls:
        print(f"[local llm] {loaded.name}: {loaded.stats.summary()}", file=sys.stderr, flush=True)
