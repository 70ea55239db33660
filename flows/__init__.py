"""Prefect flows (the orchestration layer). physlm's own log lines (training progress, `physlm.progress`) are
INFO records of the `physlm` logger: Prefect attaches its API handler to that logger
(PREFECT_LOGGING_EXTRA_LOGGERS=physlm) but not a level, so the flows set it, or the records would stop at the
root logger's WARNING and never reach a flow run's logs."""

import logging

logging.getLogger("physlm").setLevel(logging.INFO)
