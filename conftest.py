"""Repository-wide pytest setup: hypothesis profiles.

``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) derandomises the property tests so CI is
reproducible; the default ``dev`` profile explores new examples each run.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
