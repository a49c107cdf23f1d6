"""The server's prompt: an empathetic reply drafted from an affect report (the JSON a tool returned,
or any text such as its description) and, optionally, what the person said."""

import json
from typing import Annotated

from mcp.server.fastmcp.prompts.base import UserMessage
from pydantic import Field, ValidationError

from ser_tool import AffectReport
from ser_tool.describe import reading_lines


def empathetic_reply(
    affect_report: Annotated[str, Field(description="The affect report JSON from analyze_speech_emotion (or its description text).")],
    transcript: Annotated[str | None, Field(description="What the person said (their words), if known.")] = None,
    situation: Annotated[str | None, Field(description="Context for the reply, e.g. 'customer support call'.")] = None,
) -> list[UserMessage]:
    return [UserMessage(render_empathetic_prompt(affect_report, transcript, situation))]


def render_empathetic_prompt(affect_report: str, transcript: str | None = None, situation: str | None = None) -> str:
    """The empathetic-reply prompt for one affect report (JSON or plain description)."""
    reading = _reading(affect_report)
    parts = [
        "Write a short, warm reply to the person below. Respond to how they sounded as well as to what they said.",
        "",
        "How they sounded (speech emotion recognition on their voice):",
        reading,
    ]
    if transcript:
        parts += ["", "What they said:", transcript.strip()]
    if situation:
        parts += ["", f"Situation: {situation.strip()}"]
    parts += [
        "",
        "Guidelines:",
        "- The reading describes emotion expressed in the voice, not what the person feels. Never tell them what they "
        "feel; reflect tentatively ('you sound ...', 'it seems ...') and invite them to correct you.",
        "- If the confidence is low or the reading is uncertain, do not name an emotion; respond to the words and keep "
        "a calm, open tone.",
        "- If voice and words disagree (e.g. 'I'm fine' in a sad voice), gently acknowledge both.",
        "- Match the energy: calmer and slower for high arousal or distress, lighter for positive low-stakes moments.",
        "- No diagnosis, no lecture; two to four sentences, then one helpful next step or question.",
    ]
    return "\n".join(parts)


def _reading(affect_report: str) -> str:
    """The report as a few lines for the prompt; a text that is not a report (a description) as it is."""
    text = (affect_report or "").strip()
    try:
        report = AffectReport.model_validate_json(text)
    except ValidationError:
        try:
            data = json.loads(text)
        except ValueError:
            return text or "(no affect report given)"
        desc = data.get("description") if isinstance(data, dict) else None
        return desc or text
    return "\n".join(reading_lines(report))
