"""The classification benchmark (`ser-eval ser`): a backend (and a classical baseline) on corpora in the manifest
format, and leave-one-corpus-out evaluation of frozen voice representations (`ser-eval ser --loco`)."""
