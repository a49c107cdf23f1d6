"""Training: corpora (ser_tool.data: manifests, speaker splits, V/A/D targets) -> the CompactSER
architecture (ser_tool.backends.compact) -> the hybrid CE + CCC objective (loss) -> a model folder
(loop) with its model card (card).

Used by `ser train` to build the embedded model, and by users to fine-tune on their own audio.
"""
