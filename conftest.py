"""Repository-wide pytest setup: hypothesis profiles.

``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) derandomises the property tests so CI is
reproducible; the default ``dev`` profile explores new examples each run. hypothesis
comes with the ``dev`` extra (``pip install -e ".[dev]"``); without it, the property
tests cannot be collected, but the rest of the repository's tests can.
"""

import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # no dev extra
    settings = None

if settings is not None:
    settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(
        "ci", max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
