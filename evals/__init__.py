"""Evaluations of ser-tool: classic SER metrics on emotion corpora (`ser-eval ser`)."""
