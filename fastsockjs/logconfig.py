"""Logging for the command line and its workers: every line names its worker."""

from __future__ import annotations

import logging

from fastsockjs.workers import worker_id

LOG_FORMAT = "%(asctime)s [%(worker)s] %(name)s %(levelname)s %(message)s"


class WorkerLogFilter(logging.Filter):
    """Gives every record a ``worker`` attribute (for ``%(worker)s``)."""

    def __init__(self, label: str | None = None) -> None:
        super().__init__()
        self.label = label

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker"):
            record.worker = self.label or worker_id()
        return True


def configure_logging(level: str = "info", label: str | None = None) -> None:
    """Root logging to stderr in :data:`LOG_FORMAT` (the worker id on every line)."""
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO), format=LOG_FORMAT
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, WorkerLogFilter) for f in handler.filters):
            handler.addFilter(WorkerLogFilter(label))
