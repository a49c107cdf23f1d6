"""Training: corpora in the manifest format -> splits and targets -> the hybrid CE + CCC objective -> a model.

Used by `ser train` to build the embedded model, and by users to fine-tune on their own audio.
"""
