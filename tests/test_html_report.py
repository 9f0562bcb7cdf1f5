"""The HTML report: self-contained, every figure present, and it renders in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, NetworkPair, Sampler, fit_pair
from equivtest.record import write_run
from equivtest.report.html import write_html
from tests._nets import tanh_mlp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    a, b = tanh_mlp(0), tanh_mlp(1)
    sampler = Sampler(GridPoints(-1.0, 1.0, 128), GaussianNeighbourhood(64, 0.05), seed=0)
    fitted = fit_pair(NetworkPair(a, b, "act2", "act2", names=("net<0>", "net&1")), sampler, FitConfig())
    result = fitted.evaluate(np.linspace(-0.9, 0.9, 100)[:, None], thresholds={"activation_mse": 1e-3})
    record = write_run(fitted, result, tmp_path_factory.mktemp("reports"), suite="demo")
    return write_html(record.parent).parent


def test_page_is_self_contained_with_every_plot(run_folder):
    page = (run_folder / "report.html").read_text()
    for figure in ("activations", "dmaps", "aligned", "activation-error", "outputs", "eigenvalues"):
        assert f"id='{figure}'" in page
    assert page.count("data:image/png;base64,") == 6
    assert not re.search(r"""src=['"](?!data:)""", page)  # nothing loaded from elsewhere
    assert "net&lt;0&gt;" in page and "<0>" not in page  # names are escaped
    assert "activation_mse" in page and "pass" in page


CHECK_IMAGES = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', broken);
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian packages chromium, chromium-driver)")
def test_page_renders_in_headless_chromium_with_no_broken_image(run_folder, tmp_path):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    probe = tmp_path / "probe.html"
    probe.write_text((run_folder / "report.html").read_text().replace("</body>", CHECK_IMAGES))
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-images="6"' in dom and 'data-broken="0"' in dom, dom[-500:]

    shot = run_folder / "screenshot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,2600", f"--screenshot={shot}",
                    (run_folder / "report.html").as_uri()], capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 2600 and pixels.shape[1] == 1200
    assert pixels[..., :3].std() > 0.05  # not a blank page
