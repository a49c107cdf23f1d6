"""`ser-agent web`: flags, and serving the app with uvicorn (bound to 127.0.0.1 unless --host says otherwise)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ser_tool.console import number
from ser_tool.settings import add_model_flags

DEFAULT_PORT = 8000
# A demo page takes what a person records or drops: tighter limits than the CLI's (2 h, 1 GiB).
WEB_DEFAULTS = {"max_duration": 1800.0, "max_file_mb": 100.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=number(int, ge=0, le=65535), default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--model", dest="agent_model",
                        help="chat model: 'local' (default, offline) or provider:model (anthropic:claude-sonnet-4-5, "
                             "openai:gpt-4o-mini, ...; keys from the environment); env SER_AGENT_MODEL")
    parser.add_argument("--temperature", type=number(float, ge=0), help="sampling temperature of the chat model")
    add_model_flags(parser, model_flag="--ser-model", asr=True, defaults=WEB_DEFAULTS,
                    asr_default="none - the words come from 'What was said'; a recogniser named here transcribes each "
                                "upload, which on a CPU takes about half the recording's length")


class UnavailableChatModel:
    """Stands in for a chat model that could not be built: the page still analyses, and every chat turn
    answers with the reason (and what to do), instead of the server refusing to start."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def invoke(self, messages: Any) -> Any:
        from agents.errors import ChatModelError

        raise ChatModelError(f"no chat model: {self.reason}")


def build_app(args: argparse.Namespace, model: Any = None):
    """The app from parsed flags (`model`, a chat model object, replaces --model)."""
    from agents.models import chat_model
    from agents.pipeline import AffectPipeline
    from agents.settings import AgentSettings
    from agents.web import create_app
    from ser_tool import Analyzer, SERError, load_asr, safe_name

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    cfg = AgentSettings.from_args(args)
    name = "a chat model object" if model is not None else (cfg.agent_model or "local")
    if model is None:
        try:
            model = chat_model(name, temperature=args.temperature)
        except SERError as e:
            print(f"ser-agent web: the chat is off: {safe_name(e, None)}", file=sys.stderr)
            model, name = UnavailableChatModel(safe_name(e, None)), f"{name} (not available)"
    asr = load_asr(cfg.asr_model, device=cfg.device, language=cfg.language, offline=cfg.offline) if cfg.asr_model else None
    analyzer = Analyzer(cfg.backend_spec(), cfg.analysis_options())
    pipeline = AffectPipeline(model, analyzer=analyzer, asr=asr, mode="predicted", temperature=args.temperature)
    return create_app(pipeline, chat_model_name=name)


def run(args: argparse.Namespace, model: Any = None) -> int:
    """Serve until interrupted. Exit codes as ser-agent's; 2 when the [web] extra is missing or the port is taken."""
    try:
        import uvicorn
    except ImportError:
        print('ser-agent web: needs the web extra: pip install -e ".[web]"', file=sys.stderr)
        return 2
    try:
        import fastapi  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as e:
        print(f'ser-agent web: needs the web extra ({e.name} is missing): pip install -e ".[web]"', file=sys.stderr)
        return 2
    try:
        sock = _bind(args.host, args.port)
    except OSError as e:
        print(f"ser-agent web: cannot listen on {args.host}:{args.port} ({e.strerror or e}); pick another with --port "
              "(or --host)", file=sys.stderr)
        return 2
    app = build_app(args, model)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"ser-agent web: serving on http://{shown}:{port} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    server.run(sockets=[sock])
    return 0


def _bind(host: str, port: int):
    """The listening socket, bound before anything loads: a taken port is one clear message, and --port 0 prints
    the port it got."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
