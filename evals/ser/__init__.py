"""SER benchmark: a backend (and a classical baseline) on corpora in the manifest format."""
