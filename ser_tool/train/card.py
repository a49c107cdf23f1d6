"""MODEL_CARD.md for a model folder written by `ser train`, from its training.json."""

from __future__ import annotations

import json
from pathlib import Path

from ser_tool.data import VAD_ANCHORS
from ser_tool.labels import EMOTIONS

LICENCE_NOTE = (
    "The weights are derived from the training corpora and inherit their terms. For the corpora in "
    "../shared/data: RAVDESS (speech and song) and EmoSpeech are CC BY-NC-SA 4.0; Emo-DB is distributed by "
    "its authors for research. **Use this model for research and non-commercial purposes only**, with "
    "attribution to those corpora; the ser-tool code itself is Apache-2.0."
)


def _table(counts: dict) -> list[str]:
    lines = ["| corpus | " + " | ".join(EMOTIONS) + " | total |", "|---|" + "---:|" * (len(EMOTIONS) + 1)]
    for corpus, row in counts.items():
        lines.append(f"| {corpus} | " + " | ".join(str(row[e]) for e in EMOTIONS) + f" | {sum(row.values())} |")
    return lines


def write_card(model_dir: str | Path, command: str) -> Path:
    model_dir = Path(model_dir)
    s = json.loads((model_dir / "training.json").read_text())
    cfg, best = s["config"], s["best"]
    size_mb = (model_dir / "model.safetensors").stat().st_size / 1e6
    lines = [
        "# ser-tool embedded model (CompactSER)",
        "",
        "Speech emotion recognition from the voice alone: 7 emotion probabilities (neutral, happy, sad, angry, "
        "fearful, disgusted, surprised) and valence / arousal / dominance on 0..1. It describes emotion as "
        "**expressed** in the tone of voice by (mostly acted) speakers, not what anyone feels.",
        "",
        "## Model",
        f"- Architecture: log-mel (64 bands) -> ECAPA-TDNN-style 1-D conv blocks with squeeze-excitation "
        f"(3 SE-Res2Net blocks; {s.get('parameters', 0):,} parameters in all) -> attentive statistics pooling -> 128-d "
        "embedding -> 7-way softmax head and 3-way sigmoid head. A scaled-down version of MERaLiON-SER-v1's "
        "downstream network, trained from scratch (no pretrained encoder).",
        f"- Weights: `model.safetensors`, {size_mb:.1f} MB, float32; `config.json` holds the architecture.",
        "",
        "## Training",
        f"- Command: `{command}`",
        f"- Time: {s['train_seconds'] / 60:.0f} min on the CPU; best dev epoch {s['best_epoch']} of {cfg['epochs']} (seed {cfg['seed']})"
        + (f"; **interrupted in epoch {s['interrupted_in_epoch']}**: only {len(s['history'])} epoch(s) ran."
           if s.get("interrupted_in_epoch") else "."),
        f"- Objective: L = CE (class-weighted by inverse per-epoch frequency, label smoothing {cfg['label_smoothing']}) "
        f"+ {cfg['ccc_weight']} x (1 - mean CCC over valence, arousal, dominance), CCC computed over each batch.",
        f"- Optimiser: AdamW lr {cfg['lr']}, weight decay {cfg['weight_decay']}, {cfg['warmup_epochs']:g} warm-up epochs then cosine; "
        f"batch {cfg['batch_size']}.",
        f"- Augmentation: random {cfg['crop_seconds'][0]:g}-{cfg['crop_seconds'][1]:g} s crops, speed 0.9/1.1 (p {cfg['speed_p']}), "
        f"coloured noise at {cfg['snr_db'][0]:g}-{cfg['snr_db'][1]:g} dB SNR (p {cfg['noise_p']}), MixUp (p {cfg['mixup_p']}, alpha {cfg['mixup_alpha']}) "
        f"of audio and both targets. A corpus with more than {cfg['corpus_cap']} training clips contributes a fresh random "
        f"{cfg['corpus_cap']} per epoch.",
        "- Checkpoint: the epoch with the best dev UAR (mean over corpora).",
        "",
        "## Data",
        f"- Corpora: {', '.join(s['data'])}.",
        "- Labels mapped onto the 7 emotions; calm counted as neutral. Dropped (no counterpart): "
        + (", ".join(f"{c}: {d}" for c, d in s["labels_dropped"].items()) or "none") + ".",
        "- Split: speaker-independent per corpus (speakers sorted by id: last 25 % test, the 10 % before dev, "
        "clips without a speaker id train only). Speakers per split: "
        + ", ".join(f"{k} {v}" for k, v in s["speakers"].items()) + ".",
        "",
        "Training clips:",
        "",
        *_table(s["clips"]["train"]),
        "",
        "Dev clips:",
        "",
        *_table(s["clips"]["dev"]),
        "",
        "Test clips (held out, never seen in training or selection):",
        "",
        *_table(s["clips"]["test"]),
        "",
        "## Dimensional targets",
        "The corpora carry emotion categories, not valence/arousal/dominance ratings. **The dimensional head "
        "learned category-derived targets**: each clip's target is the NRC VAD Lexicon entry (Mohammad 2018) of its "
        "emotion word, pushed outwards for clips marked strong/high intensity (valence 20 % further from 0.5, arousal "
        "20 % of the way to 1, dominance 10 % further from 0.5). Treat its V/A/D as a smooth summary of the category "
        "probabilities, not as an independent measurement.",
        "",
        "| emotion | valence | arousal | dominance |",
        "|---|---:|---:|---:|",
        *[f"| {e} | {v:.3f} | {a:.3f} | {d:.3f} |" for e, (v, a, d) in VAD_ANCHORS.items()],
        "",
        "## Dev results (model selection)",
        "- Dev UAR per corpus at the best epoch: " + ", ".join(f"{c} {u:.3f}" for c, u in best["dev_uar"].items())
        + f"; mean {best['dev_mean_uar']:.3f}.",
        "- Dev CCC against the category-derived targets: " + ", ".join(f"{k} {v:.3f}" for k, v in best["dev_ccc"].items()) + ".",
        "- Held-out test results come from `ser-eval ser` (see the README and the section below, when present).",
        "",
        "## Limitations",
        "- Trained on a few hours of mostly acted English and German speech (plus noisy single keywords in English and "
        "Hindi): expect weaker results on spontaneous, conversational or other-language speech, and on emotions the "
        "corpora under-represent (disgusted comes from RAVDESS and Emo-DB only, surprised from RAVDESS only).",
        "- Expressed emotion in the voice is not felt emotion; a flat distribution means the voice does not tell.",
        "- Probabilities are not calibrated beyond what the objective gives.",
        "",
        "## Licence",
        LICENCE_NOTE,
        "",
    ]
    path = model_dir / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
