"""The live dashboard (``matchstream dashboard``) and its static report (``matchstream report``).

``queries`` holds every SQL statement, ``snapshot`` runs them and shapes one refresh, ``page``
renders the HTML (served or self-contained), ``server`` serves it, ``report`` writes the file.
The chart library is uPlot, vendored under ``static/`` (``static/VENDORED.md``).
"""

from __future__ import annotations

from matchstream.engine.catalog import CATALOG_SCHEMA

DEFAULT_CATALOG = CATALOG_SCHEMA  # the local engine's; information_schema on SingleStore
DEFAULT_DATABASE = "speed_dating"

__all__ = ["DEFAULT_CATALOG", "DEFAULT_DATABASE"]
