"""CP-Bench style evaluation: dataset -> solver (the reference agent) -> scorer (LLM judge | exact choice) -> metrics.

    ser-eval cpbench generate --out runs/cp-set
    ser-eval cpbench run runs/cp-set/cpstyle.jsonl --model local --mc --modes none predicted oracle
"""
