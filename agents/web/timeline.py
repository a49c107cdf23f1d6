"""The timeline picture: per-segment emotion band over valence and arousal curves, as a PNG (matplotlib).

One colour per emotion, named, used by the picture, the tinted transcript and the page's legend alike.
matplotlib is imported when a picture is drawn (the Agg backend: no display needed).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from ser_tool import EMOTIONS, AffectReport, Segment

__all__ = ["AROUSAL_COLOUR", "EMOTION_COLOURS", "VALENCE_COLOUR", "timeline_png"]

# emotion -> (colour name, hex). Distinct for colour-blind readers as far as 7 hues allow; the names are
# shown in the legend so nobody has to guess which tint is which.
EMOTION_COLOURS: dict[str, tuple[str, str]] = {
    "neutral": ("grey", "#9e9e9e"),
    "happy": ("gold", "#e6ab02"),
    "sad": ("blue", "#1f5fbf"),
    "angry": ("red", "#d62728"),
    "fearful": ("purple", "#7b3fa0"),
    "disgusted": ("green", "#2e8b57"),
    "surprised": ("orange", "#ff7f0e"),
}
assert tuple(EMOTION_COLOURS) == EMOTIONS
VALENCE_COLOUR = ("black", "#222222")
AROUSAL_COLOUR = ("teal", "#008080")
MIN_ALPHA = 0.3  # a segment's tint fades with its confidence, never below this


def tint_alpha(confidence: float) -> float:
    """How strongly a segment is tinted: MIN_ALPHA for a guess, 1 for a certain reading."""
    return MIN_ALPHA + (1.0 - MIN_ALPHA) * max(0.0, min(1.0, confidence))


def timeline_png(report: AffectReport, *, width: float = 9.0, dpi: int = 90) -> bytes:
    """The report's timeline as a PNG: the top band has one bar per speech segment in its emotion's colour
    (stronger = more confident; blank = no speech), the plot below valence and arousal (0..1) over time."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    segments: Sequence[Segment] = report.timeline or [
        Segment(start=0.0, end=report.duration, speech=True, affect=report.overall)]
    end = max(report.duration, max((s.end for s in segments), default=0.0)) or 1.0
    fig = Figure(figsize=(width, 3.2), dpi=dpi)
    band, curves = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2.4], "hspace": 0.08})
    seen: list[str] = []
    for s in segments:
        if not s.speech or s.affect is None:
            continue
        emotion = s.affect.emotion
        band.axvspan(s.start, s.end, color=EMOTION_COLOURS[emotion][1], alpha=tint_alpha(s.affect.confidence), lw=0)
        if emotion not in seen:
            seen.append(emotion)
    band.set_yticks([])
    band.set_ylabel("emotion", rotation=0, ha="right", va="center")
    band.set_xlim(0, end)
    handles = [Patch(color=EMOTION_COLOURS[e][1], label=f"{e} ({EMOTION_COLOURS[e][0]})") for e in EMOTIONS if e in seen]
    if handles:
        band.add_artist(band.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=len(handles), frameon=False,
                    fontsize=8, handlelength=1.2, borderaxespad=0))

    speech = [s for s in segments if s.speech and s.affect is not None and s.affect.dimensions is not None]
    if speech:
        xs, val, aro = [], [], []
        for s in speech:  # each segment holds its value over its span: steps show where a reading applies
            for x in (s.start, s.end):
                xs.append(x)
                val.append(s.affect.dimensions.valence)
                aro.append(s.affect.dimensions.arousal)
        lines = [curves.plot(xs, val, color=VALENCE_COLOUR[1], lw=1.8, label=f"valence ({VALENCE_COLOUR[0]})")[0],
                 curves.plot(xs, aro, color=AROUSAL_COLOUR[1], lw=1.8, ls="--", label=f"arousal ({AROUSAL_COLOUR[0]}, dashed)")[0]]
        band.add_artist(band.legend(handles=lines, loc="lower right", bbox_to_anchor=(1, 1.02), ncol=2, frameon=False,
                                    fontsize=8, borderaxespad=0))
    else:
        curves.text(0.5, 0.5, "this model gives no valence / arousal", ha="center", va="center",
                    transform=curves.transAxes, color="#666666")
    curves.axhline(0.5, color="#bbbbbb", lw=0.8, ls=":")
    curves.set_ylim(0, 1.05)
    curves.set_ylabel("0 low .. 1 high")
    curves.set_xlabel("time (s)")
    curves.set_xlim(0, end)
    for ax in (band, curves):
        ax.spines[["top", "right"]].set_visible(False)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.86, bottom=0.16)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
