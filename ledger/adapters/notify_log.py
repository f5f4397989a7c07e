"""A notifier that writes one JSON line per alert to a file (appended) or to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from ledger.application.alerts import Alert, NotifierError


class LogNotifier:
    """Append each alert as one JSON object per line; nothing to set up, nothing to close."""

    def __init__(self, path: Path | None = None, *, stream: TextIO | None = None) -> None:
        """Write to ``path`` (created if missing, appended to), else to ``stream`` (stderr).

        Args:
            path: the JSON-lines file; each alert opens, appends and closes it.
            stream: where lines go without a path (default: ``sys.stderr``, looked up per
                alert so pytest's capture and redirections apply).
        """
        self._path = path
        self._stream = stream

    def __repr__(self) -> str:
        return f"LogNotifier(path={self._path!r})"

    async def send(self, alert: Alert) -> None:
        """Write ``alert`` as one JSON line.

        Raises:
            NotifierError: the line could not be written (disk full, no permission).
        """
        line = json.dumps(alert.to_json(), sort_keys=True, ensure_ascii=False) + "\n"
        try:
            if self._path is None:
                stream = sys.stderr if self._stream is None else self._stream
                stream.write(line)
                stream.flush()
                return
            # A small append: the dispatcher bounds each send with a timeout anyway.
            with self._path.open("a", encoding="utf-8") as file:
                file.write(line)
        except OSError as e:
            msg = f"cannot write the alert log {self._path}: {e.strerror or e}"
            raise NotifierError(msg) from e
