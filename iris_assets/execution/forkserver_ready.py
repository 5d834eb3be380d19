"""The last module a multiprocess run's forkserver preloads: freeze what the others imported
(see ``execution.heap``; step processes are forked from it and exit without a final collection)."""

from iris_assets.execution.heap import freeze_now

freeze_now()
