"""The leaderboard page as a browser shows it: headless chromium renders it from disk, its
scripts run, and the table read back from the rendered DOM holds every number of the
report.json files it was made from, sorted as asked; a screenshot shows a page, not a blank.

Chromium is Debian's `chromium` package, which scripts/setup.sh installs. Where it is missing
the browser tests are skipped, saying why; under FER3D_REQUIRE_BROWSER=1 (CI) that fails.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from leaderboard_folders import HOSTILE_FOLDER, HOSTILE_MODEL, PROTOCOL
from leaderboard_pages import read_page, report_of, shown_score
from PIL import Image

from fer3d_bench.leaderboard import write_leaderboard

BROWSERS = ("chromium", "chromium-browser")
SECONDS = 120  # a render takes about a second; a hung browser must not hang the suite
WINDOW = (1400, 1000)


def find_browser(which=shutil.which, environ=os.environ) -> str:
    """The chromium to run, else a skip saying why, or a failure where the environment asks
    that browser tests run (FER3D_REQUIRE_BROWSER=1, as CI sets)."""
    for name in BROWSERS:
        found = which(name)
        if found:
            return found
    problem = f"no headless browser: none of {', '.join(BROWSERS)} is on PATH (scripts/setup.sh)"
    if environ.get("FER3D_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{problem}, and FER3D_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> str:
    return find_browser()


def run_browser(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless chromium with a throwaway profile under tmp_path, bounded in time."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def rendered(browser: str, tmp_path: Path, page: Path, fragment: str = ""):
    """The page's DOM after its scripts ran, read back as data."""
    url = page.resolve().as_uri() + fragment
    return read_page(run_browser(browser, tmp_path, "--dump-dom", url).stdout)


@pytest.fixture
def site(folders, tmp_path) -> Path:
    names = ("reference", "optimistic", "submission")
    return write_leaderboard([folders[name] for name in names], tmp_path / "site")


def _folder_of(row) -> str:
    return row.cells["name"].spans["folder"]


def test_the_rendered_table_holds_every_number_of_the_reports(browser, folders, site, tmp_path):
    page = rendered(browser, tmp_path, site)
    (table,) = page.tables
    assert table.protocol == PROTOCOL
    ours = table.body("ours").data()
    by_folder = {folder.name: folder for folder in folders.values()}
    assert sorted(_folder_of(row) for row in ours) == sorted(by_folder)
    for row in ours:
        (group,) = report_of(by_folder[_folder_of(row)])["groups"]
        for metric in ("accuracy", "macro_f1"):
            mean, std = shown_score(group, metric)
            cell = row.cells[metric]
            assert (cell.spans["mean"], cell.spans["std"]) == (mean, std)
            assert cell.text == f"{mean} ± {std}"
        aggregate = group["aggregate"]
        assert row.cells["folds"].text == f"{aggregate['folds_ok']} / {group['folds_expected']}"
    published = report_of(folders["reference"])["published"][PROTOCOL]
    shown = table.body("published").data()
    assert len(shown) == len(published)
    for row, given in zip(shown, published, strict=True):
        assert row.cells["name"].spans["model"] == given["method"]
        assert row.cells["accuracy"].spans["mean"] == given["printed"]
    names = {_folder_of(row): row.cells["name"].spans["model"] for row in ours}
    assert names[HOSTILE_FOLDER] == HOSTILE_MODEL  # rendered as text, not run as a script


def test_sorting_from_the_address_reorders_each_section_on_its_own(browser, site, tmp_path):
    def order(page, body, key):
        return [row.cells[key].value for row in page.tables[0].body(body).data()]

    written = rendered(browser, tmp_path, site)
    assert written.tables[0].sorted is None
    accuracies = [float(v) for v in order(written, "ours", "accuracy")]
    assert accuracies == sorted(accuracies, reverse=True) and len(set(accuracies)) == 3

    ascending = rendered(browser, tmp_path, site, "#sort=accuracy")
    (table,) = ascending.tables
    assert table.sorted == "accuracy" and table.heads["accuracy"] == "ascending"
    assert [float(v) for v in order(ascending, "ours", "accuracy")] == sorted(accuracies)
    published = [float(v) for v in order(ascending, "published", "accuracy")]
    assert published == sorted(published) and published != order(written, "published", "accuracy")
    assert [b.classes for b in table.bodies] == [["ours"], ["published"]]
    assert table.body("published").rows[0].heading.startswith("Published")  # still on top

    by_name = rendered(browser, tmp_path, site, "#sort=-name")
    assert by_name.tables[0].heads["name"] == "descending"
    names = order(by_name, "ours", "name")
    assert names == sorted(names, key=str.lower, reverse=True)
    assert names != order(written, "ours", "name")


def test_a_click_on_a_header_sorts_and_a_second_click_reverses(browser, site, tmp_path):
    """The page's own click handler, driven by a script that a copy of the page ends with
    (the copy drops the page's policy, which admits the page's own script alone)."""
    text = site.read_text(encoding="utf-8")
    policy = re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n', text).group(0)
    clicks = (
        "<script>\n"
        "function click(key) {\n"
        "  document.querySelector('th[data-key=\"' + key + '\"] button').click();\n"
        "}\n"
        "click('name'); click('accuracy'); click('accuracy');\n"
        "document.body.appendChild(document.createElement('p')).textContent = location.hash;\n"
        "</script>\n</body>"
    )
    copy = site.with_name("clicked.html")
    copy.write_text(text.replace(policy, "").replace("</body>", clicks), encoding="utf-8")
    page = rendered(browser, tmp_path, copy)
    (table,) = page.tables
    # a number sorts best first on a first click, the other way round on a second
    assert {k: v for k, v in table.heads.items() if v} == {"accuracy": "ascending"}
    values = [float(row.cells["accuracy"].value) for row in table.body("ours").data()]
    assert values == sorted(values) and len(set(values)) == 3
    assert "#sort=accuracy" in page.texts  # the address says how the page is sorted


def test_a_screenshot_shows_a_page_not_a_blank(browser, site, tmp_path):
    shot = tmp_path / "page.png"
    size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    run_browser(browser, tmp_path, f"--screenshot={shot}", size, site.resolve().as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 10  # text, borders, the baseline's and the published rows' shades
    dark = (pixels.max(axis=2) < 80).mean()
    assert 0.002 < dark < 0.5  # text, but not a black page


def test_a_missing_browser_skips_unless_the_environment_requires_it():
    def none(name):
        return None

    with pytest.raises(pytest.skip.Exception, match="no headless browser"):
        find_browser(none, {})
    with pytest.raises(pytest.fail.Exception, match="FER3D_REQUIRE_BROWSER=1 requires"):
        find_browser(none, {"FER3D_REQUIRE_BROWSER": "1"})
    assert find_browser(lambda name: f"/bin/{name}", {}) == "/bin/chromium"
