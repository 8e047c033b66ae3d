"""Job spec validation and normalization (issue 4), pure and deterministic.

A submitted job (JSON from the API, JSON/YAML through the CLI) is checked
once, here, and turned into one canonical shape that the FSM stores and the
scheduler, deployments and agents read without re-checking or guessing
defaults. Every error names the exact field that is wrong, as a path such as
``groups[0].tasks[0].resources.memory``, so the API can answer 400 with it.

Two input forms are accepted:

* the full form: ``name``, ``type``, ``groups[].tasks[]``;
* the single-task shorthand: task and group fields (``image``, ``command``,
  ``count``, ...) at the top level, which becomes one group and one task both
  named after the job.

The result is plain dicts/lists/str/int/float (msgpack and JSON friendly);
normalizing a normalized job returns it unchanged. Durations are seconds.
Defaults follow Nomad where the issue does not say otherwise.
"""

from domain.jobspec.constraints import normalize_constraint
from domain.jobspec.errors import JobSpecError
from domain.jobspec.groups import group_resources, update_settings
from domain.jobspec.job import SERVER_OWNED_FIELDS, normalize_job
from domain.jobspec.values import DNS_LABEL_RE as DNS_LABEL_RE
from domain.jobspec.values import parse_duration, parse_secret_ref

__all__ = [
    "JobSpecError",
    "normalize_job",
    "parse_duration",
    "parse_secret_ref",
    "normalize_constraint",
    "group_resources",
    "update_settings",
    "SERVER_OWNED_FIELDS",
]
