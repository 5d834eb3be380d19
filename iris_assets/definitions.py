"""The code location: what `dagster dev`, `dg`, `-m iris_assets` and workspace.yaml load.

Loading it also does what only a code location should: a terminal command that would run
on a temporary instance, or with a bad setting or a refused run config, stops in one line
before any work; a code server forks its run workers from a preloaded forkserver.
"""

from iris_assets.location import load
from iris_assets.pipelines import iris_definitions

defs = load(iris_definitions)
