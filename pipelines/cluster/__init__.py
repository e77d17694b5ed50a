"""`alphatide cluster up|down|status|trigger`: the distributed layout on one machine (or several).

Airflow 3 with the CeleryExecutor (api-server, scheduler, dag-processor, triggerer, Celery workers) on
PostgreSQL with Redis as the broker, an MLflow tracking server on PostgreSQL with an artifact root on
disk, the Feast online store on Redis, and serving replicas reading the MLflow server and Redis.
`config` holds the connection settings, `layout` each component's command and environment, `procs`
the process groups and pid files, `services` PostgreSQL/Redis set-up, `airflow_api` the REST client.
"""
