"""matchstream: real-time ML in the ingest path."""
