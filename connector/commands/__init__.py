"""The operator's commands above the stages: ``check``, ``map`` (dry run), ``test``, ``fields``."""
