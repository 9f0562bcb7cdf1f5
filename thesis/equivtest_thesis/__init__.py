"""equivtest-thesis: the thesis's experiments as equivtest suites.

- :mod:`.zoo`: the networks the suites train themselves, deterministically, and cache;
- :mod:`.experiments`: the suites (``equivtest run 1d``, ``pytest thesis/suites/``) and the
  merge experiment's merger model;
- :mod:`.data`: the data the suites ship (CWRU bearing windows, sentence polarity).

The method, the pytest plugin, the reports, the measures and the weight-space distances
are the core package ``equivtest``.
"""

__version__ = "0.1.0"
