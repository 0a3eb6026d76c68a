"""Training: one loop whose behaviour is set by config (losses, optimiser, schedule, checkpoints, logs)."""

from __future__ import annotations
