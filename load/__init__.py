"""trigger.do's load-testing tool: `python -m load SCENARIO ...` (or `trigger-do load ...`).

Scenarios run against the embedded runtime (default) or a running server (`--target URL`);
every figure in the report is read back from the runs themselves (their rows' timestamps,
states and attempts), never from the load generator's own clock alone.
"""
