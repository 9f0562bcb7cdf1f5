"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _torch_optimizer_modules_loaded():
    """Load the ~800 modules torch imports on an optimizer's first step, once, up front.

    Some tests run pytest in this process (pytester), which afterwards drops every
    module imported during that run. If the first optimizer step happens inside such a
    run (training a network into an empty cache), torch's operator libraries are later
    imported and registered a second time, which torch refuses.
    """
    net = torch.nn.Linear(1, 1)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.zeros(1, 1)).sum().backward()
    optimizer.step()
