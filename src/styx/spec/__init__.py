"""The spec layer: what the user wrote, validated (SkyPilot's task YAML dialect).

Entry points (import the submodules directly; this package imports nothing so that the CLI
stays fast):

* :class:`styx.spec.task.Task` and :class:`styx.spec.dag.Dag` - ``from_yaml``, ``to_yaml``
* :class:`styx.spec.resources.Resources` - ``candidates()``, ``is_ordered``
* :mod:`styx.spec.overrides` - ``Overrides`` and ``apply`` for command-line flags
* :mod:`styx.spec.support` - ``check_launchable`` and ``unsupported_features``
* :mod:`styx.spec.config` - ``load_config`` and ``Config.get``

The error codes are listed in :mod:`styx.spec.check`.
"""
