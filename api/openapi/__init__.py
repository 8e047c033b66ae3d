"""The API's OpenAPI 3.1 document (``GET /v1/openapi.json``), built in plain
Python from route tables kept beside the handlers' modules: the words
(:mod:`.vocab`), the shared parts (:mod:`.components`, :mod:`.schemas`), the
tables (:mod:`.paths_jobs`, :mod:`.paths_cluster`, :mod:`.paths_access`) and
the assembly (:mod:`.document`)."""
