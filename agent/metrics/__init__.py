"""Resource metrics of this node and of its allocations, with history.

The agent samples every ``interval`` seconds (10 by default) the node and
every running allocation, and keeps the samples here, on the node, where
the servers read them:

* :mod:`agent.metrics.sampler`: one sampling round (the node from /proc,
  the allocations from the drivers' ``stats()``), on the interval;
* :mod:`agent.metrics.store`: the history, its journal and snapshot on disk,
  and the queries;
* :mod:`agent.metrics.series`: one series in memory, downsampled into
  coarser tiers as samples arrive.
"""
