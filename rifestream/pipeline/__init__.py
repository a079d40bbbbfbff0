"""Output clock, frame loop, asyncio runner and latency budget."""
