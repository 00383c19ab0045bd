"""Pure parts shared by every layer: models, serialization, durations, retry math, states."""
