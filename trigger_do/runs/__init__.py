"""Run index (every run's row), run objects (checkpoints, steps, logs) and the task registry."""
