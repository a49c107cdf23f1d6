"""GE2E speaker encoder (Resemblyzer 0.1.4, weights inside the package, Apache-2.0).

Frames: the last LSTM layer's hidden state at every 10-ms mel frame, the recording cut into
1.6-s chunks (the window length the encoder was trained on; the state restarts per chunk, so cost
is linear and a long recording never drifts), averaged to 25 frames/s: (T, 256).
Utterance: Resemblyzer's own utterance embedding (L2-normed mean of 1.6-s partial embeddings), 256-d.
Volume is normalised as Resemblyzer does (to -30 dBFS, increase only); silences are not trimmed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_tool.errors import ModelNotAvailableError
from ser_tool.representations.base import Features, check_wave, pool_frames

CHUNK = 160  # mel frames per chunk (1.6 s), Resemblyzer's partials_n_frames
POOL = 4  # 100 -> 25 frames/s


def normalize_volume(x: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Resemblyzer's volume normalisation (raise quiet audio to -30 dBFS, never lower it), except that
    near-silence (RMS under -100 dBFS, where its int16 arithmetic divides by zero) is left alone."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    if rms < 1e-5:
        return x
    gain_db = target_dbfs - 20 * np.log10(rms)
    return (x * 10 ** (gain_db / 20)).astype(np.float32) if gain_db > 0 else x


class ResemblyzerRepresentation:
    name = "resemblyzer"
    frame_dim = 256
    utterance_dim = 256

    def __init__(self, weights: str | Path | None = None, device: object = "cpu") -> None:
        """device: a torch device (or its name) for the encoder; the frames come back as NumPy arrays either way."""
        try:
            import resemblyzer
            from resemblyzer import VoiceEncoder
            from resemblyzer import audio as rz_audio
        except ImportError as e:
            raise ModelNotAvailableError(
                "the 'resemblyzer' representation needs the Resemblyzer package: "
                "pip install --no-deps Resemblyzer==0.1.4 (its declared webrtcvad needs a compiler; "
                "ser-tool already brings webrtcvad-wheels)") from e
        path = Path(weights) if weights else Path(resemblyzer.__file__).parent / "pretrained.pt"
        if not path.is_file():
            raise ModelNotAvailableError(f"no Resemblyzer weights at {path}; reinstall Resemblyzer==0.1.4 or pass the .pt file")
        self._audio = rz_audio
        self.encoder = VoiceEncoder(device=device, verbose=False, weights_fpath=path).eval()
        version = getattr(resemblyzer, "__version__", "0.1.4")
        self.id = f"resemblyzer-{version}-{path.stat().st_size}-chunk{CHUNK}-pool{POOL}-v2"

    def _prepare(self, wave: np.ndarray) -> np.ndarray:
        return normalize_volume(check_wave(wave))

    def _frames(self, x: np.ndarray) -> np.ndarray:
        import torch

        mel = self._audio.wav_to_mel_spectrogram(x)[: max(1, len(x) // 160)]  # (T, 40): one frame per 10 ms of input
        t = mel.shape[0]
        n = -(-t // CHUNK)
        padded = np.zeros((n * CHUNK, mel.shape[1]), dtype=np.float32)
        padded[:t] = mel
        with torch.inference_mode():
            # zero padding sits after the real frames, so it cannot change their (causal) states
            out, _ = self.encoder.lstm(torch.from_numpy(padded.reshape(n, CHUNK, -1)).to(self.encoder.device))
        hidden = out.reshape(n * CHUNK, -1)[:t].cpu().numpy()
        return pool_frames(hidden, POOL).astype(np.float32)

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """The frame sequence only (what the voice head needs): one LSTM pass, no utterance embedding."""
        return self._frames(self._prepare(wave))

    def features(self, wave: np.ndarray) -> Features:
        x = self._prepare(wave)
        utterance = self.encoder.embed_utterance(x)
        return Features(self._frames(x), np.asarray(utterance, dtype=np.float32))
