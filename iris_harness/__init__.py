"""What the tests and the benchmarks both drive: real processes, servers and the pipeline's job.

- ``environment``: where things are (repository, the venv's commands) and the quiet environment;
- ``processes``: services in their own process groups, free ports, waiting for things;
- ``topology``: docker-compose.yml's services as local processes (PostgreSQL, MLflow, Dagster);
- ``runs``: the pipeline's job as a reconstructable target, and runs started or watched from outside;
- ``graphql_client``: the webserver's GraphQL API, called as the UI calls it (launch, re-execute, cancel, wait).

Not installed with the package: the tests and ``python -m benchmarks`` import it from
the repository root.
"""
