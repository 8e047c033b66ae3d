"""Task logs kept on the node that ran them: capture, an on-disk store, followers.

Logs stay where they were written, in per-allocation files under
``<data_dir>/agent/logs/<alloc>/``, so they outlive the container and the
agent's own restarts; the servers read them here or ask this node for them.

* :mod:`agent.logs.lines`: one line, its record in a segment file, timestamps;
* :mod:`agent.logs.store`: the per-allocation segment files (cap, retention,
  reading, ``meta.json`` with the followers' cursors);
* :mod:`agent.logs.subscription`: live followers of an allocation's new lines;
* :mod:`agent.logs.followers`: the threads that copy a task's output in;
* :mod:`agent.logs.collector`: which tasks are followed, and the sweep.
"""
