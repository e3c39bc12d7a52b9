"""The actors every service runs, each `async def run(stop)` for the supervisor."""
