"""CP-Bench style evaluation: dataset -> solver (the reference agent) -> scorer (LLM judge | exact choice) -> metrics.

    ser-eval cpbench generate --out runs/cp-v2          # the set v2: dev.jsonl, test.jsonl, audio/, set.json
    ser-eval cpbench run runs/cp-v2/test.jsonl --model local --mc --modes none predicted oracle
"""
