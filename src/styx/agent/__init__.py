"""The head-node agent every Styx cluster runs: job queue, scheduling over Ray, logs, autostop.

Public surface (see README.md beside this file):

* :mod:`styx.agent.protocol` -- ``JobSpec``, ``JobRecord``, ``JobStatus``, ``AgentConfig``
  (``agent.json``) and the JSON-lines wire format;
* :class:`styx.agent.client.AgentClient` -- typed calls over the agent's unix socket;
* :mod:`styx.agent.bootstrap` -- argv lists that start/stop a cluster's Ray and its agent;
* ``python -m styx.agent run|supervise|ensure|stop|stop-ray|call`` -- the processes.

Nothing here imports Styx outside ``styx.agent`` and ``styx.errors``: the agent runs on remote
nodes with only Ray and the styx wheel installed.
"""
