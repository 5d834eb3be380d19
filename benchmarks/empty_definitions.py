"""An empty code location: what loading costs before any of the project's code."""

import dagster as dg

defs = dg.Definitions()
