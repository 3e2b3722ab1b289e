"""Portfolio services backed by a local fake exchange."""
