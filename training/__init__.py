"""Model presets, packed-sequence attention, MLM, optimizer, schedules, phases, checkpoints, tasks. Runs without Ray."""
