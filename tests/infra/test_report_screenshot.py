"""The run report as a person sees it: rendered by headless Chromium over a run root with every stage.

Three checks a string match cannot make: every image decodes (as PNG bytes, and in the browser after load),
every section shows text of its own beyond its heading and note, and the screenshot is not a blank page.
Chromium is Debian's `chromium` package; without it the test skips and says so.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infra.report import build_report
from tests.infra.test_report import write_full_run

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                                "(apt-get install -y --no-install-recommends chromium)")
# Run in the page after load: how many images did not decode, and which sections show nothing of their own.
# Its verdict is written into the DOM, which `--dump-dom` prints.
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((img) => !img.complete || img.naturalWidth === 0).length;
  const empty = [...document.querySelectorAll("section")].filter((section) => {
    const own = [...section.children].filter((el) => el.tagName !== "H2" && !el.classList.contains("note"));
    return own.map((el) => el.innerText.trim()).join("") === "";
  }).map((section) => section.id);
  const marker = document.createElement("div");
  marker.id = "report-check";
  marker.textContent = `images=${images.length} broken=${broken} empty=${empty.join(",") || "none"}`;
  document.body.appendChild(marker);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", *args],
                          capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    write_full_run(str(root))
    build_report(str(root))
    return root / "report" / "index.html"


def test_every_image_is_a_png_that_decodes(report_page):
    sources = re.findall(r'<img src="([^"]+)"', report_page.read_text())
    assert len(sources) >= 8  # funnel, reasons, yield, dedup, tokens, loss, throughput, one per evaluation task
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG"
        image.load()  # decodes every pixel: a truncated PNG fails here
        assert image.width > 100 and image.height > 100


def test_in_the_browser_every_image_loads_and_no_section_is_empty(report_page, tmp_path):
    checked = tmp_path / "checked.html"
    checked.write_text(report_page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))

    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", checked.as_uri()).stdout

    verdict = re.search(r'<div id="report-check">images=(\d+) broken=(\d+) empty=([^<]*)</div>', dom)
    assert verdict, "the check script did not run (no marker in the DOM)"
    images, broken, empty = int(verdict[1]), int(verdict[2]), verdict[3]
    assert images >= 8 and broken == 0 and empty == "none", verdict[0]


def test_the_screenshot_is_a_page_not_a_blank(report_page, tmp_path):
    shot = tmp_path / "out.png"

    _chromium(f"--screenshot={shot}", "--window-size=1280,4000", report_page.as_uri())

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (4000, 1280)
    assert pixels.std() > 20  # text, tables and plots on the page background; a blank page is ~0
    rows_with_ink = (pixels < 128).any(axis=1).mean()
    assert rows_with_ink > 0.3, f"only {rows_with_ink:.0%} of the screenshot's rows hold anything dark"
