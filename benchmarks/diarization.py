"""Speaker attribution on generated conversations: DER, per-speaker emotion accuracy, and the cost.

Conversations of held-out speakers (RAVDESS actors 19-24 or Emo-DB speakers 15-16, one corpus per
conversation; evals/conversations.py) alternate turns with pauses, without overlap. For each one:

- DER (missed + false alarm + confusion over reference speech, 0.25-s collar, optimal speaker mapping;
  evals/der.py) of `Analyzer.analyze(..., speakers=N)` (N given) and of speakers="auto";
- per-speaker emotion accuracy: each reference turn's emotion against the emotion the report's timeline
  gives the time the mapped hypothesis speaker holds in that turn (duration-weighted top emotion), and
  against the plain analysis' timeline (same question without speakers);
- the cost: seconds of processing per second of audio (x real time) with speakers and without.

    PYTHONPATH=. python benchmarks/diarization.py [--two 50] [--three 20] [--data ../shared/data] [--split dev]

`--split dev` draws the conversations from the other speakers instead (RAVDESS actors 1-18, Emo-DB speakers
03-14) with other seeds: tune there, report the default (held-out) set.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from evals.conversations import generate, speaker_pools
from evals.der import DERParts, der_parts
from ser_tool.analyzer import Analyzer
from ser_tool.audio import SAMPLE_RATE
from ser_tool.labels import EMOTIONS


def _turn_emotion(report, start: float, end: float, speaker: int | None) -> str | None:
    """Duration-weighted top emotion of the timeline's speech inside [start, end] (of `speaker` when given)."""
    acc = np.zeros(len(EMOTIONS))
    for seg in report.timeline or ():
        if not seg.speech or seg.affect is None or (speaker is not None and seg.speaker != speaker):
            continue
        overlap = min(end, seg.end) - max(start, seg.start)
        if overlap > 0:
            acc += overlap * np.array(seg.affect.probabilities.as_tuple())
    return EMOTIONS[int(np.argmax(acc))] if acc.sum() > 0 else None


def _mapping(ref, hyp) -> dict:
    from scipy.optimize import linear_sum_assignment

    rn, hn = sorted({s for *_, s in ref}), sorted({s for *_, s in hyp})
    overlap = np.zeros((len(rn), len(hn)))
    for a, b, r in ref:
        for c, d, h in hyp:
            overlap[rn.index(r), hn.index(h)] += max(0.0, min(b, d) - max(a, c))
    rows, cols = linear_sum_assignment(-overlap)
    return {rn[i]: hn[j] for i, j in zip(rows, cols)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--two", type=int, default=50, help="two-speaker conversations")
    ap.add_argument("--three", type=int, default=20, help="three-speaker conversations")
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--no-auto", action="store_true", help="skip the speakers='auto' runs")
    ap.add_argument("--split", choices=("test", "dev"), default="test",
                    help="test: held-out speakers, the reported set (default); dev: the other speakers and seeds, for tuning")
    args = ap.parse_args()

    pools = speaker_pools(args.data, "test" if args.split == "test" else "dev+train")
    seed0 = 0 if args.split == "test" else 50_000  # dev: seeds 70_000 + i (two speakers), 80_000 + i (three)
    analyzer = Analyzer(args.backend)
    cache: dict = {}
    rows = []
    for n, count in ((2, args.two), (3, args.three)):
        for i in range(count):
            conv = generate(pools, n, seed=seed0 + 10_000 * n + i, cache=cache)
            ref = [(t.start, t.end, t.speaker) for t in conv.turns]
            t0 = time.perf_counter()
            plain = analyzer.analyze(conv.samples, sample_rate=SAMPLE_RATE, timeline=True)
            t1 = time.perf_counter()
            given = analyzer.analyze(conv.samples, sample_rate=SAMPLE_RATE, speakers=n)
            t2 = time.perf_counter()
            auto = None if args.no_auto else analyzer.analyze(conv.samples, sample_rate=SAMPLE_RATE, speakers="auto")
            row = {"n": n, "dur": conv.duration, "t_plain": t1 - t0, "t_given": t2 - t1}
            for key, rep in (("given", given), ("auto", auto)):
                if rep is None:
                    continue
                hyp = [(s.start, s.end, s.speaker) for s in rep.timeline if s.speech]
                row[key] = der_parts(ref, hyp)
                row[key + "_count"] = len(rep.speakers)
                if key == "given":
                    m = _mapping(ref, hyp)
                    row["emo_spk"] = [_turn_emotion(rep, t.start, t.end, m.get(t.speaker)) == t.emotion for t in conv.turns]
                    row["emo_plain"] = [_turn_emotion(plain, t.start, t.end, None) == t.emotion for t in conv.turns]
            rows.append(row)
            print(f"  {n} speakers #{i:02d}: {conv.duration:5.1f} s, DER given {row['given'].der:6.1%}"
                  + ("" if auto is None else f", auto {row['auto'].der:6.1%} ({row['auto_count']} found)"), flush=True)
    print()
    print(f"{'speakers':>8} {'convs':>5} {'audio':>7} {'DER N given':>11} {'miss':>6} {'FA':>6} {'conf':>6} "
          f"{'DER auto':>8} {'count ok':>8} {'emo acc/spk':>11} {'emo plain':>9} {'xRT plain':>9} {'xRT spk':>8}")
    for n in (2, 3):
        sel = [r for r in rows if r["n"] == n]
        if not sel:
            continue
        g = sum((r["given"] for r in sel), DERParts(0, 0, 0, 0))
        a = sum((r["auto"] for r in sel if "auto" in r), DERParts(0, 0, 0, 0))
        auto = "auto" in sel[0]
        count_ok = f"{np.mean([r['auto_count'] == n for r in sel]):>8.0%}" if auto else f"{'-':>8}"
        auto_der = f"{a.der:>8.1%}" if auto else f"{'-':>8}"
        dur = sum(r["dur"] for r in sel)
        print(f"{n:>8} {len(sel):>5} {dur:>6.0f}s {g.der:>11.1%} {g.missed / g.total:>6.1%} {g.false_alarm / g.total:>6.1%} "
              f"{g.confusion / g.total:>6.1%} {auto_der} {count_ok} "
              f"{np.mean([x for r in sel for x in r['emo_spk']]):>11.1%} {np.mean([x for r in sel for x in r['emo_plain']]):>9.1%} "
              f"{sum(r['t_plain'] for r in sel) / dur:>9.3f} {sum(r['t_given'] for r in sel) / dur:>8.3f}")
    print("DER: (missed + false alarm + confusion) / reference speech, 0.25-s collar, summed over conversations. "
          "emo acc: share of reference turns whose emotion is the top emotion the timeline gives there "
          "(per speaker: the mapped speaker's segments; plain: all segments, no speakers).")


if __name__ == "__main__":
    main()
