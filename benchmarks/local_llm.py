"""Benchmark: the offline chat model (llama.cpp via xllamacpp) on this machine. Not a test: a measurement.

Loads a GGUF model (default: Qwen2.5-Coder-1.5B-Instruct from the [local-llm] extra), then reports
- load time;
- one cold CP-style multiple-choice question (system prompt + affect block + transcript + 4 options,
  about 420 prompt tokens, nothing cached) answered with one grammar-forced letter: seconds, prompt tok/s;
- 12 hand-written 4-option questions (general knowledge, prosody described in words, transcripts whose
  affect block decides the answer) answered by the forced letter: accuracy, mean seconds per question
  (the shared system prompt is reused from llama.cpp's cache, as in an evaluation run), and the
  agreement of the log-prob argmax with the forced letter;
- generation tok/s (32 tokens);
- with --free N, the free answers too (N tokens at most): how many parse to a letter.

    python benchmarks/local_llm.py                       # the default thread count
    python benchmarks/local_llm.py --threads 2 --free 24
    python benchmarks/local_llm.py --model /models/x.gguf
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from langchain_core.messages import HumanMessage, SystemMessage

from agents.choice import choose_letter, parse_letter
from agents.llama import DEFAULT_THREADS, LlamaCppChatModel, qwen_gguf
from agents.prompt import DEFAULT_TEMPLATE

SYSTEM = DEFAULT_TEMPLATE.system.format(affect_help=DEFAULT_TEMPLATE.affect_help["predicted"])
LETTERS = "ABCD"


def block(emotion: str, conf: float, v: float, a: float, d: float, segments: list[tuple[str, str]]) -> str:
    lines = ["Affect of the whole recording (speech-emotion model):",
             f"- expressed emotion: {emotion}, confidence {conf:.2f}; next most likely: neutral 0.10, sad 0.07",
             f"- valence {v:.2f}, arousal {a:.2f}, dominance {d:.2f}", "", "Transcript with the affect of each segment:"]
    t = 0.0
    for label, words in segments:
        lines.append(f"[{t:.1f}-{t + 3.2:.1f}s] ({label}) {words}")
        t += 3.6
    return "\n".join(lines)


# (user text before the question, question, options, index of the correct option)
QUESTIONS: list[tuple[str, str, list[str], int]] = [
    ("Transcript: Could you tell me which planet is known as the red planet?", "Which planet is the speaker asking about?",
     ["Venus", "Mars", "Jupiter", "Saturn"], 1),
    ("Transcript: How many legs does a spider have? I always forget.", "What is the correct answer to the speaker's question?",
     ["Six", "Four", "Ten", "Eight"], 3),
    ("Transcript: What's the boiling point of water at sea level in Celsius?", "What is the correct answer to the speaker's question?",
     ["100 degrees", "50 degrees", "0 degrees", "212 degrees"], 0),
    ("A listener's note on the recording: the voice is loud, fast and high-pitched, the words are clipped and the speaker "
     "nearly shouts.\nTranscript: Where are my keys?", "How does the speaker most likely feel?",
     ["Calm", "Angry", "Sleepy", "Content"], 1),
    ("A listener's note on the recording: the voice is quiet, slow and low, with long pauses and a trembling, breaking "
     "pitch.\nTranscript: I got the results back today.", "How does the speaker most likely feel?",
     ["Sad", "Excited", "Angry", "Amused"], 0),
    ("A listener's note on the recording: the pitch jumps up, the voice is bright and fast, and the speaker laughs "
     "between words.\nTranscript: We won the tickets.", "How does the speaker most likely feel?",
     ["Bored", "Fearful", "Disgusted", "Happy"], 3),
    (block("angry", 0.71, 0.15, 0.86, 0.80, [("angry, conf 0.74, V 0.14 A 0.88 D 0.82", "It's fine."),
                                              ("angry, conf 0.66, V 0.17 A 0.84 D 0.78", "Really, it's totally fine.")]),
     "Is the speaker actually fine with the situation?",
     ["Yes, they are relaxed about it", "No, they sound angry despite their words", "They sound sleepy", "They sound amused"], 1),
    (block("sad", 0.66, 0.20, 0.25, 0.30, [("sad, conf 0.70, V 0.18 A 0.22 D 0.28", "Congratulations on the promotion."),
                                            ("sad, conf 0.61, V 0.22 A 0.27 D 0.31", "You really deserve it.")]),
     "How does the speaker seem to feel while congratulating?",
     ["Thrilled", "Furious", "Sad, though the words are kind", "Terrified"], 2),
    (block("happy", 0.74, 0.85, 0.70, 0.60, [("happy, conf 0.78, V 0.88 A 0.72 D 0.61", "Oh no, you didn't have to do this."),
                                              ("happy, conf 0.69, V 0.83 A 0.68 D 0.58", "You shouldn't have.")]),
     "How does the speaker react to the gift?",
     ["Delighted", "Annoyed", "Frightened", "Indifferent"], 0),
    (block("fearful", 0.63, 0.20, 0.80, 0.15, [("fearful, conf 0.68, V 0.18 A 0.82 D 0.12", "Did you hear that noise downstairs?"),
                                                ("fearful, conf 0.58, V 0.22 A 0.78 D 0.18", "Someone is in the house.")]),
     "What emotion does the speaker's voice express?",
     ["Joy", "Boredom", "Pride", "Fear"], 3),
    (block("neutral", 0.62, 0.50, 0.35, 0.50, [("neutral, conf 0.65, V 0.50 A 0.33 D 0.50", "I hate this stupid printer."),
                                                ("neutral, conf 0.59, V 0.49 A 0.36 D 0.51", "Anyway, the report is on your desk.")]),
     "How is the complaint about the printer said?",
     ["In a calm, matter-of-fact tone", "Screaming with rage", "Sobbing", "Laughing with joy"], 0),
    (block("surprised", 0.68, 0.60, 0.85, 0.50, [("surprised, conf 0.71, V 0.62 A 0.87 D 0.50", "The meeting is at three."),
                                                  ("surprised, conf 0.64, V 0.58 A 0.83 D 0.49", "Today?")]),
     "How does the speaker react to the meeting time?",
     ["Surprised", "Sad", "Disgusted", "Calm and bored"], 0),
]


def messages(context: str, question: str, options: list[str]):
    opts = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    user = f"{context}\n\nQuestion: {question}\nOptions:\n{opts}\nAnswer with the letter of the correct option only."
    return [SystemMessage(SYSTEM), HumanMessage(user)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .gguf file (default: Qwen2.5-Coder-1.5B-Instruct from the [local-llm] extra)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--free", type=int, default=0, help="also generate N tokens of free answer per question")
    parser.add_argument("--limit", type=int, default=len(QUESTIONS), help="questions to ask (default all 12)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    model = LlamaCppChatModel(model_path=str(args.model or qwen_gguf()), n_threads=args.threads, report=False)
    model.load()
    print(f"model {model.model_path}\nthreads {args.threads}; load {model.stats.load_s:.1f} s")

    # One cold CP-style question: the longest prompt, nothing cached.
    cold = messages(*QUESTIONS[6][:3])
    t = time.perf_counter()
    pick = choose_letter(model, cold, LETTERS)
    cold_s = time.perf_counter() - t
    s = model.stats
    print(f"cold CP-style MC question: {s.prompt_tokens} prompt tokens + 1 letter in {cold_s:.1f} s "
          f"(prompt {s.prompt_tps:.1f} tok/s); letter {pick.letter}")
    gen = model.complete([HumanMessage("Describe a calm voice in three sentences.")], max_tokens=33, ignore_eos=True)
    timing = gen["timings"]
    print(f"generation: {timing['predicted_n'] - 1} tokens after the first at "
          f"{(timing['predicted_n'] - 1) / (timing['predicted_ms'] / 1000):.1f} tok/s")

    seconds, correct, agree, free_parsed = [], 0, 0, 0
    for context, question, options, answer in QUESTIONS[: args.limit]:
        t = time.perf_counter()
        pick = choose_letter(model, messages(context, question, options), LETTERS, free_tokens=args.free)
        seconds.append(time.perf_counter() - t)
        correct += pick.letter == LETTERS[answer]
        best = max(pick.logprobs, key=pick.logprobs.get) if pick.logprobs else None
        agree += best == pick.letter
        free = parse_letter(pick.free_text, LETTERS, options) if args.free else None
        free_parsed += free is not None
        lp = " ".join(f"{k}:{v:.2f}" for k, v in pick.logprobs.items())
        print(f"  {pick.letter} (want {LETTERS[answer]}) {seconds[-1]:.1f} s  logprobs {lp}"
              + (f"  free {pick.free_text!r} -> {free}" if args.free else ""))
    n = len(seconds)
    print(f"forced letter: {correct}/{n} correct, parsed {n}/{n}; log-prob argmax = forced letter {agree}/{n}")
    print(f"seconds per question: mean {statistics.mean(seconds):.1f}, max {max(seconds):.1f} (system prompt cached)")
    if args.free:
        print(f"free answers: {free_parsed}/{n} parse to a letter")
    print(f"totals: {s.summary()}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
