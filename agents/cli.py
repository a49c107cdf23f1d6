"""`ser-agent`: the reference agent from the terminal.

    ser-agent chat --audio FILE [--model PROVIDER:MODEL | local]   # empathetic chat about a recording
    ser-agent ask --audio FILE "question"                         # one answer (the fixed pipeline)
    ser-agent web [--model local] [--port 8000]                   # the same chat as a local web page

Turns are read from standard input (one per line), so a chat can be piped. Settings come from flags or
SER_ environment variables (SER_AGENT_MODEL, SER_ASR_MODEL, SER_BACKEND, SER_WINDOW, ...; the emotion
model's flags are the ones every entry point shares, with --ser-model for the model since --model is
the chat model's).
Exit codes: 0 ok; 1 bad audio; 2 bad usage; 3 a model could not be loaded or failed; 141 stdout closed early.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ser_tool.console import EXIT_CODES as SER_EXIT_CODES
from ser_tool.console import error_message, exit_code, number, quiet_on_closed_stdout, require_extra
from ser_tool.describe import affect_brief
from ser_tool.settings import add_model_flags

from agents.errors import AgentError, ChatModelError
from agents.prompt import AFFECT_MODES

# The agent's own errors: bad usage (2), a chat model that cannot be built or fails (3).
EXIT_CODES = {**SER_EXIT_CODES, AgentError: 2, ChatModelError: 3}
# what the `agent` extra brings that every run needs (gguf and accelerate only for the local model: checked there)
AGENT_MODULES = ("langchain_core", "langchain")

EMPATHETIC_CONTEXT = (
    "This is a live conversation: the recording is the user's own voice message to you. Reply to them directly, "
    "warmly and briefly, responding to how they sound as well as to what they say; never tell them what they feel."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-agent", description="An LLM that hears how things were said: "
                                     "speech recognition + speech emotion recognition + any chat model.",
                                     epilog="Every option of the emotion model and the recogniser can also be set with an "
                                            "SER_ environment variable (SER_BACKEND, SER_MODEL, SER_WINDOW, SER_ASR_MODEL, ...); "
                                            "the chat model with SER_AGENT_MODEL. Flags win over the environment.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chat = sub.add_parser("chat", help="chat about a voice message (follow-up turns from stdin)")
    ask = sub.add_parser("ask", help="answer one question about a recording")
    ask.add_argument("question", help="the question")
    for p in (chat, ask):
        p.add_argument("--audio", help="the recording (WAV, FLAC, OGG/Opus, MP3, ...)")
        p.add_argument("--model", dest="agent_model",
                       help="chat model: provider:model (anthropic:claude-sonnet-4-5, openai:gpt-4o-mini, "
                            "ollama:llama3.2, ...; keys from the environment) or 'local' / local:smollm2 / local:PATH "
                            "(offline); env SER_AGENT_MODEL")
        p.add_argument("--temperature", type=number(float, ge=0), help="sampling temperature of the chat model")
        p.add_argument("--mode", choices=AFFECT_MODES, default="predicted",
                       help="what the prompt carries about how it was said (default: predicted)")
        p.add_argument("--transcript", help="the words, if known (then no speech recognition runs)")
        p.add_argument("--show-prompt", action="store_true", help="print the rendered prompt to stderr")
        add_model_flags(p, model_flag="--ser-model", asr=True)
    from agents.web.cli import add_arguments as add_web_arguments  # no web dependency is imported here

    add_web_arguments(sub.add_parser("web", help="the chat demo as a local web page (needs the [web] extra)"))
    return parser


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None, *, model: Any = None, stdin: TextIO | None = None,
         stdout: TextIO | None = None) -> int:
    """Entry point. `model` (a chat model object) replaces --model: tests and embedding programs use it."""
    from ser_tool import SERError

    parser = build_parser()
    args = parser.parse_args(argv)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    if args.command is None:
        parser.print_help()
        return 2
    require_extra("agent", AGENT_MODULES, command="ser-agent")
    if args.command == "web":
        from agents.web.cli import run as run_web

        try:
            return run_web(args, model)
        except SERError as e:
            print(f"ser-agent: error: {error_message(e, args, max_chars=None)}", file=sys.stderr)
            return exit_code(e, EXIT_CODES)
        except KeyboardInterrupt:
            return 130
    try:
        pipeline = _pipeline(args, model)
        if args.command == "ask":
            return _ask(args, pipeline, stdout)
        return _chat(args, pipeline, stdin, stdout)
    except SERError as e:
        print(f"ser-agent: error: {error_message(e, args, max_chars=None)}", file=sys.stderr)  # it may quote a file name
        return exit_code(e, EXIT_CODES)
    except KeyboardInterrupt:
        return 130


def _check_inputs(args) -> None:
    """Before any model loads: what this mode needs from the command line, named by its flags."""
    from agents.errors import AgentError

    if args.audio is None and args.mode == "predicted":
        raise AgentError("mode 'predicted' needs the audio: pass --audio FILE (the recording whose voice the agent "
                         "should hear), or --mode none --transcript TEXT to talk about the words alone")
    if args.audio is None and args.transcript is None:
        raise AgentError(f"mode {args.mode!r} needs the words: pass --transcript TEXT, or --audio FILE with --asr-model")


def _pipeline(args, model: Any):
    from agents.errors import AgentError
    from agents.pipeline import AffectPipeline
    from agents.settings import AgentSettings
    from ser_tool import Analyzer, load_asr
    from ser_tool.asr import default_asr

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    cfg = AgentSettings.from_args(args)
    _check_inputs(args)  # after the settings (their errors first), before any model loads
    if model is None:
        model = cfg.agent_model
        if not model:
            raise AgentError("no chat model: pass --model provider:model (e.g. anthropic:claude-sonnet-4-5, "
                             "openai:gpt-4o-mini, ollama:llama3.2) or --model local for the offline model")
    asr = None
    if cfg.asr_model and args.transcript is None:
        asr = load_asr(cfg.asr_model, device=cfg.device, language=cfg.language, offline=cfg.offline)
    elif args.transcript is None:  # the offline Whisper when the [asr] extra is installed, else the words stay unknown
        asr = default_asr(device=cfg.device, language=cfg.language)
    analyzer = Analyzer(cfg.backend_spec(), cfg.analysis_options()) if args.mode == "predicted" else None
    return AffectPipeline(model, analyzer=analyzer, asr=asr, mode=args.mode, temperature=args.temperature)


def _ask(args, pipeline, out: TextIO) -> int:
    answer = pipeline.run(args.question, audio=args.audio, transcript=args.transcript)
    if args.show_prompt:
        print(answer.prompt.as_text(), file=sys.stderr)
    print(answer.answer, file=out)
    return 0


def _chat(args, pipeline, stdin: TextIO, out: TextIO) -> int:
    from agents.pipeline import Conversation

    interactive = stdin.isatty()
    conversation = Conversation(pipeline, audio=args.audio, transcript=args.transcript, context=EMPATHETIC_CONTEXT)
    print(perceived_line(conversation.perception), file=out, flush=True)
    turns = 0
    while True:
        if interactive:
            print("you> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        reply = conversation.turn(text)
        if args.show_prompt and turns == 0:
            print("\n\n".join(f"[{m.type}]\n{m.text}" for m in conversation.messages[:2]), file=sys.stderr)
        print(f"agent [{affect_tag(conversation.perception)}]> {reply.text or '(no reply)'}", file=out, flush=True)
        if reply.warning:  # e.g. the offline model echoing the turn: say so rather than leave nonsense unexplained
            print(f"ser-agent: warning: {reply.warning} (--model PROVIDER:MODEL)", file=sys.stderr, flush=True)
        turns += 1
    if turns == 0:
        print("(no message: type a turn, or pipe one, e.g. echo 'How do I sound?' | ser-agent chat --audio FILE)", file=out)
    return 0


def affect_tag(perception) -> str:
    """A compact tag of the perceived affect, shown next to each reply."""
    report = perception.report
    if report is None:
        return "words only" if perception.words is not None else "no words, no affect"
    return affect_brief(report.overall)


def perceived_line(perception) -> str:
    words = perception.transcript
    heard = "words: " + (words if isinstance(words, str) else words.text if words is not None else "(not transcribed)")
    if perception.report is None:
        return f"[heard] {heard}"
    return f"[perceived voice] {affect_tag(perception)}: {perception.report.description}\n[heard] {heard}"


if __name__ == "__main__":
    sys.exit(main())
