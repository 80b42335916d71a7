"""The monitoring vocabulary every source emits and correlation consumes: events, the
alerts they update, severities and fingerprints (``model``), and the plain shape of
events from collectors that watch devices themselves (``device``). Value types only: no
engine, no store."""
