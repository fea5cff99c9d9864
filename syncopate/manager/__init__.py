"""The manager: an aiohttp server that owns the cluster's state."""
