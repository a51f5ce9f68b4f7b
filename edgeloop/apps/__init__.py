"""Applications that ship with edgeloop (the demo trees); each is a plain user of the API."""

__all__: list[str] = []
