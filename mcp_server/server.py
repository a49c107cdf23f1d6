"""The MCP server: a FastMCP whose lifespan context (`ServerState`: the model pool, the sandbox, the
speech recogniser, the settings) is what every tool call shares; the tools (mcp_server.tools), three
resources and the empathetic-reply prompt (mcp_server.prompts)."""

import inspect
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.fastmcp import FastMCP

from ser_tool import DIMENSIONS, EMOTIONS, ASR, Affect, Dimensions, EmotionProbabilities, load_asr, report_json_schema
from ser_tool.asr import default_asr
from ser_tool.report import UNCERTAIN_BELOW

from mcp_server.pool import ModelPool
from mcp_server.prompts import empathetic_reply
from mcp_server.sandbox import Sandbox
from mcp_server.settings import ServerSettings
from mcp_server.tools import ServerState, add_tools

SERVER_NAME = "ser-tool"
LABELS_URI = "ser://labels"
SCHEMA_URI = "ser://schema/affect-report"
CONFIG_URI = "ser://config"

INSTRUCTIONS = (
    "Speech emotion recognition: hear HOW something was said. The tools analyse the speaker's voice in a "
    "recording and return an affect report: the emotion the voice expresses (not what the speaker feels, "
    "and not what the words mean), a confidence, valence/arousal/dominance and a short description. "
    f"Audio is passed by reference (a file path inside the allowed folders, see {CONFIG_URI}). "
    f"The label set and scales are in {LABELS_URI}; the 'empathetic_reply' prompt turns a report into a reply."
)


def build_server(settings: ServerSettings, *, pool: ModelPool | None = None, sandbox: Sandbox | None = None,
                 asr: ASR | None = None) -> FastMCP:
    """The configured FastMCP server. Nothing heavy happens here: the model loads on first use
    (or in the background once the server runs, with settings.warm_up). `pool`, `sandbox` and `asr`
    (the speech recogniser, from settings.asr_model; when unset the offline Whisper of the [asr] extra, or
    none without it) default to the ones `settings` describes (tests pass their own)."""
    if asr is None and settings.asr_model:
        asr = load_asr(settings.asr_model, device=settings.device, language=settings.language, offline=settings.offline)
    elif asr is None:
        asr = default_asr(device=settings.device, language=settings.language)
    state = ServerState(
        settings=settings,
        pool=pool or ModelPool(settings.backend_specs(), settings.analysis_options(), settings.max_concurrent),
        sandbox=sandbox or Sandbox(settings.sandbox_policy()),
        asr=asr,
    )

    @asynccontextmanager
    async def lifespan(_app: FastMCP) -> AsyncIterator[ServerState]:
        if settings.warm_up:
            state.pool.warm_up_in_background()
        yield state

    extra = {}
    if "max_request_body_size" in inspect.signature(FastMCP.__init__).parameters:  # HTTP body cap (newer 1.x only)
        # room for the largest audio_base64 (4/3 of the bytes) plus the JSON around it
        extra["max_request_body_size"] = max(4 * 2**20, int(state.sandbox.policy.max_inline_bytes * 4 / 3) + 2**20)
    server = FastMCP(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **extra,
    )
    add_tools(server, state)

    server.resource(LABELS_URI, name="labels", title="Emotion labels and scales", mime_type="application/json",
                    description="The 7 emotions (in report order), the valence/arousal/dominance scales and what confidence means.",
                    )(labels)
    server.resource(SCHEMA_URI, name="affect_report_schema", title="Affect report JSON schema", mime_type="application/json",
                    description="JSON schema of the affect report the analysis tools return (every field described).",
                    )(affect_report_schema)

    # Resources get no request context to read the lifespan state from, so this one holds it.
    @server.resource(CONFIG_URI, name="config", title="What this server accepts", mime_type="application/json",
                     description="Allowed folders, size and duration limits, whether URLs are fetched, the backends and whether the model is loaded.")
    def config() -> str:
        return json.dumps(server_config(state), indent=2)

    server.prompt(name="empathetic_reply", title="Empathetic reply",
                  description="Draft a reply that responds to how the person sounded, from an affect report "
                              "(the JSON an analysis tool returned, or its description) and optionally what they said.",
                  )(empathetic_reply)
    return server


# -- resources ---------------------------------------------------------------------------------------

def labels() -> str:
    return json.dumps(label_set(), indent=2)


def affect_report_schema() -> str:
    return json.dumps(report_json_schema(), indent=2)


def label_set() -> dict[str, Any]:
    """The label set and scales, from the report schema's own field descriptions (one source of truth)."""
    return {
        "meaning": "Scores describe emotion as expressed in the voice (tone, prosody), not what the speaker feels, "
                   "and ignore the words' meaning.",
        "emotions": [{"name": e, "description": EmotionProbabilities.model_fields[e].description} for e in EMOTIONS],
        "emotion_order": list(EMOTIONS),
        "probabilities": "0..1 per emotion, summing to 1, always in emotion_order.",
        "dimensions": [{"name": d, "range": [0.0, 1.0], "description": Dimensions.model_fields[d].description}
                       for d in DIMENSIONS],
        "dimension_order": list(DIMENSIONS),
        "confidence": Affect.model_fields["confidence"].description,
        "uncertain_below": UNCERTAIN_BELOW,
    }


def server_config(state: ServerState) -> dict[str, Any]:
    """What this server accepts and runs, for ser://config."""
    policy, pool = state.sandbox.policy, state.pool
    return {
        "allowed_folders": [str(d) for d in policy.allowed_dirs],
        "hard_links_allowed": policy.allow_hardlinks,
        "url_fetching": policy.allow_urls,
        "max_file_mb": policy.max_file_bytes / 2**20,
        "max_audio_base64_mb": policy.max_inline_bytes / 2**20,
        "max_download_mb": policy.max_download_bytes / 2**20 if policy.allow_urls else None,
        "max_duration_s": pool.options.limits.max_duration,
        "max_batch_files": policy.max_batch_files,
        "backends": list(pool.names),
        "default_backend": pool.default,
        "model_loaded": pool.is_loaded(),
        "max_windows": pool.options.max_windows,
        "call_time_limit_s": pool.options.time_limit,
        "window_s": pool.options.segmentation.window,
        "hop_s": pool.options.segmentation.step,
        "speech_recogniser": state.asr.model_id if state.asr is not None else None,
    }
