"""Time helpers: the simulation clock is epoch seconds (int64), the rate unit the week."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

WEEK = 7 * 86_400
DAY = 86_400


def parse_ts(text: str) -> int:
    """'YYYY-MM-DD HH:MM:SS' (UTC) -> epoch seconds."""
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return int(dt.timestamp())


def month_multiplier(seconds: np.ndarray, season: np.ndarray) -> np.ndarray:
    """Seasonality multiplier of the calendar month each timestamp falls in."""
    month = seconds.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12
    return season[month]
