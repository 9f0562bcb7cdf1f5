"""The thesis's experiments as suites, defined once for ``pytest thesis/suites/`` and ``equivtest run``.

Each experiment module provides ``NAME``, ``TITLE`` and either a single fit (``pair()``,
``sampler()``, ``CONFIG``, ``test_inputs()``, ``THRESHOLDS``) or its own ``run()``.
``thesis/pyproject.toml`` declares them in the entry-point group ``equivtest.suites``,
where ``equivtest list`` and ``equivtest run NAME`` find them (:mod:`equivtest.suites`).
This package imports none of them, so listing the suites stays fast (no torch).
"""

