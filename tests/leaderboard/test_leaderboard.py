"""fer3d-bench leaderboard: the page's rows and numbers, its sections, its escaping, refusals of
damaged input, and bytes that depend on the inputs alone."""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from leaderboard_folders import HOSTILE_DESCRIPTION, HOSTILE_FOLDER, HOSTILE_MODEL, PROTOCOL
from leaderboard_pages import read_page, report_of, shown_score

from fer3d_bench.cli import COMMANDS, main
from fer3d_bench.compare import compare_runs
from fer3d_bench.errors import Fer3dError
from fer3d_bench.leaderboard import PAGE, write_leaderboard
from fer3d_bench.leaderboard.board import OPTIMISTIC

ORDER = ("reference", "optimistic", "submission")


def _page(folders, out, **options):
    path = write_leaderboard([folders[name] for name in ORDER], out, **options)
    assert path == out / PAGE
    return path.read_text(encoding="utf-8")


def _ours(page):
    (table,) = page.tables
    assert table.protocol == PROTOCOL
    return {row.cells["name"].spans["folder"]: row for row in table.body("ours").data()}


def _invoke(args, monkeypatch):
    """The command through the real group (which turns our errors into one line), registered
    here for the test whatever cli/__init__.py holds."""
    monkeypatch.setitem(COMMANDS, "leaderboard", "fer3d_bench.cli.leaderboard:leaderboard")
    return CliRunner().invoke(main, ["leaderboard", *map(str, args)])


def test_every_row_shows_its_reports_numbers_provenance_and_link(folders, tmp_path):
    page = read_page(_page(folders, tmp_path / "site"))
    rows = _ours(page)
    assert set(rows) == {folders[name].name for name in ORDER}
    for name in ORDER:
        folder = folders[name]
        report = report_of(folder)
        (group,) = report["groups"]
        cells = rows[folder.name].cells
        for metric in ("accuracy", "macro_f1"):
            mean, std = shown_score(group, metric)
            assert (cells[metric].spans["mean"], cells[metric].spans["std"]) == (mean, std)
            assert float(cells[metric].value) == group["aggregate"][metric]["mean"]
        assert cells["folds"].text == f"{group['aggregate']['folds_ok']} / 6"
        (link,) = cells["report"].links  # relative to the page, each character quoted
        assert not set(link) & set(' "<>&') and not link.startswith("/")
        assert (tmp_path / "site" / unquote(link)).resolve() == folder / "report.md"
        provenance = cells["provenance"].text
        sha = report["run"]["protocols"][PROTOCOL]["manifest_sha256"]
        assert f"fer3d-bench {report['run']['fer3d_bench_version']}" in provenance
        assert sha[:12] in provenance
        fingerprint = report["run"]["dataset"].get("fingerprint")
        assert ("predictions only" in provenance) == (name == "submission")
        assert fingerprint is None or fingerprint[:12] in provenance
    # best accuracy first as written: reference (1 in 5 wrong), submission (1 in 4), optimistic
    order = [row.cells["name"].spans["folder"] for row in page.tables[0].body("ours").data()]
    assert order == [folders[n].name for n in ("reference", "submission", "optimistic")]
    assert rows["reference"].cells["pretrained"].text == "no"
    assert rows[HOSTILE_FOLDER].cells["pretrained"].text == "not stated"


def test_rows_whose_conditions_differ_from_the_baselines_are_marked(folders, tmp_path):
    rows = _ours(read_page(_page(folders, tmp_path / "site")))
    reference, optimistic = rows["reference"], rows["optimistic"]
    submission = rows[HOSTILE_FOLDER]
    assert "baseline" in reference.classes and "incomparable" not in reference.classes
    assert reference.cells["delta"].text == "baseline"
    for name, row in (("optimistic", optimistic), ("submission", submission)):
        (compared,) = compare_runs([folders["reference"], folders[name]], seed=0).rows
        test, boot = compared.accuracy, compared.bootstrap
        shown = test if test.low is not None else boot
        difference = test.mean if shown is test else boot.estimate
        assert shown.low is not None and shown.low <= difference <= shown.high
        points = [_signed(100 * v) for v in (difference, shown.low, shown.high)]
        assert row.cells["delta"].text == "{} [{}, {}]".format(*points)
        assert float(row.cells["delta"].value) == difference
    assert reference.cells["notes"].text.startswith("truncated: 2 of 100 repetitions")
    assert {"incomparable", "flagged"} <= set(optimistic.classes)
    notes = optimistic.cells["notes"].text
    assert OPTIMISTIC in notes and "vs the last epoch" in notes
    assert "epoch: the epoch with the best test accuracy" in optimistic.cells["conditions"].text
    # a submission that did not say how its epoch was chosen cannot be said to compare
    assert "incomparable" in submission.classes
    assert "how the epoch was chosen not stated" in submission.cells["notes"].text


def _signed(points):
    return f"{points:+.2f}".replace("-", "−")


def test_a_pair_compare_refuses_keeps_the_reports_difference_and_says_why(folders, tmp_path):
    for result in (folders["optimistic"] / PROTOCOL).rglob("result.json"):
        result.unlink()  # a folder that holds its report alone
    rows = _ours(read_page(_page(folders, tmp_path / "site")))
    means = {
        name: report_of(folders[name])["groups"][0]["aggregate"]["accuracy"]["mean"]
        for name in ("reference", "optimistic")
    }
    delta = rows["optimistic"].cells["delta"]
    assert delta.text == _signed(100 * (means["optimistic"] - means["reference"]))
    assert delta.title.startswith("the difference of the reports' means; no interval: ")
    assert str(folders["optimistic"]) in delta.title
    assert "[" in rows[HOSTILE_FOLDER].cells["delta"].text  # the other pair still compares


def test_the_baseline_option_chooses_the_row_others_are_compared_with(folders, tmp_path):
    page = read_page(_page(folders, tmp_path / "site", baseline=folders["optimistic"]))
    rows = _ours(page)
    assert "baseline" in rows["optimistic"].classes
    assert "incomparable" not in rows["optimistic"].classes  # flagged, but it is the baseline
    assert "flagged" in rows["optimistic"].classes
    assert "incomparable" in rows["reference"].classes
    assert "vs the epoch with the best test accuracy" in rows["reference"].cells["notes"].text


def test_hostile_names_are_shown_as_text_never_as_markup(folders, tmp_path):
    path = folders["reference"] / "report.json"
    report = report_of(folders["reference"])
    report["published"][PROTOCOL][0]["method"] = "<svg onload=alert(2)>"
    report["published"][PROTOCOL][0]["source"] = "</td></tr></tbody><script>x()</script>"
    path.write_text(json.dumps(report))
    text = _page(folders, tmp_path / "site")
    for hostile in (HOSTILE_MODEL, HOSTILE_DESCRIPTION, HOSTILE_FOLDER, "<svg onload"):
        assert hostile not in text
    assert "<img" not in text and "<svg" not in text and "<b>" not in text
    assert "javascript:" not in text  # the submitter's url is not made a link
    assert text.count("<script") == 1 and text.count("</script>") == 1
    page = read_page(text)
    assert page.scripts == 1
    row = _ours(page)[HOSTILE_FOLDER]  # read back as the very text given
    assert row.cells["name"].spans["model"] == HOSTILE_MODEL
    assert row.cells["name"].spans["description"] == HOSTILE_DESCRIPTION
    published = page.tables[0].body("published").data()
    assert published[0].cells["name"].spans["model"] == "<svg onload=alert(2)>"
    assert published[0].cells["provenance"].text.startswith("</td></tr></tbody><script>")


def test_published_rows_stand_in_a_section_of_their_own(folders, tmp_path):
    path = folders["reference"] / "report.json"
    report = report_of(folders["reference"])
    rows = report["published"][PROTOCOL]
    for row in rows:  # the first states some conditions, the others none
        row.pop("conditions", None)
    rows[0]["conditions"] = {"unit": "sample", "epoch_selection": "best-test", "epochs": 30}
    path.write_text(json.dumps(report))
    page = read_page(_page(folders, tmp_path / "site"))
    (table,) = page.tables
    assert [b.classes for b in table.bodies] == [["ours"], ["published"]]
    ours, published = table.body("ours"), table.body("published")
    assert all("published" not in row.classes for row in ours.rows)
    heading = published.rows[0].heading
    assert heading is not None and heading.startswith("Published, as printed")
    assert "under other conditions: test folds seen: not stated vs no" in heading
    shown = published.data()
    # every report holds the same rows: each is shown once
    assert [r.cells["name"].spans["model"] for r in shown] == [r["method"] for r in rows]
    for row, given in zip(shown, rows, strict=True):
        assert row.cells["accuracy"].spans["mean"] == given["printed"]
        assert row.cells["delta"].text == "—" and row.cells["macro_f1"].text == "—"
        assert given["source"] in row.cells["provenance"].text
    first, second = shown[0].cells, shown[1].cells
    assert "folds by sample: the same person in train and test" in first["conditions"].text
    assert "vs folds by subject" in first["notes"].text
    assert second["conditions"].text.startswith("not stated (protocol as stated: ")
    assert "how folds were dealt not stated" in second["notes"].text


def test_a_page_depends_on_its_inputs_alone(folders, tmp_path):
    first = _page(folders, tmp_path / "site")
    again = _page(folders, tmp_path / "site")
    elsewhere = _page(folders, tmp_path / "other")  # a sibling: the same relative links
    assert first == again == elsewhere
    created = report_of(folders["reference"])["run"]["created"]
    assert created and created not in first
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", first)
    changed = report_of(folders["optimistic"])
    changed["groups"][0]["aggregate"]["accuracy"]["mean"] = 0.5
    (folders["optimistic"] / "report.json").write_text(json.dumps(changed))
    assert _page(folders, tmp_path / "site") != first


def test_the_page_allows_exactly_its_own_style_and_script(folders, tmp_path):
    page = read_page(_page(folders, tmp_path / "site"))

    def allowed(source):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        return f"'sha256-{digest}'"

    assert page.policy.startswith("default-src 'none'; ")
    assert f"style-src {allowed(''.join(page.styles))};" in page.policy
    assert f"script-src {allowed(''.join(page.script_text))};" in page.policy
    assert "http" not in "".join(page.styles) + "".join(page.script_text)


def _truncated(report):
    text = json.dumps(report, indent=1)
    return text[: len(text) // 2]


def _other_schema(report):
    return json.dumps(report | {"schema": "fer3d-bench/report/9"})


def _published_accuracy_in_words(report):
    report["published"][PROTOCOL][0]["accuracy"] = "high"
    return json.dumps(report)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (_truncated, "truncated JSON"),
        (_other_schema, "expected schema 'fer3d-bench/report/1'"),
        (_published_accuracy_in_words, f"published.{PROTOCOL}[0].accuracy must be a number"),
    ],
    ids=["truncated", "schema", "published row"],
)
def test_a_damaged_report_is_refused_in_one_line_naming_it(
    folders, tmp_path, monkeypatch, damage, named
):
    path = folders["optimistic"] / "report.json"
    path.write_text(damage(report_of(folders["optimistic"])))
    out = tmp_path / "site"
    args = [folders[name] for name in ORDER]
    result = _invoke([*args, "--out", out], monkeypatch)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.output
    assert named in lines[0]
    assert not out.exists()  # every input is read before anything is written


def test_a_folder_without_a_report_is_told_how_to_make_one(folders, tmp_path, monkeypatch):
    (folders["optimistic"] / "report.json").unlink()
    result = _invoke(
        [folders["reference"], folders["optimistic"], "--out", tmp_path / "s"], monkeypatch
    )
    assert result.exit_code == 1
    expected = (
        f"error: {folders['optimistic']}: holds no report.json; write it with "
        f"`fer3d-bench report {folders['optimistic']}`"
    )
    assert result.output.strip() == expected


def test_a_folder_given_twice_is_refused(folders, tmp_path):
    twice = [folders["reference"], folders["reference"] / ".." / "reference"]
    with pytest.raises(Fer3dError, match="given twice"):
        write_leaderboard(twice, tmp_path / "site")


def test_a_link_planted_where_the_page_goes_is_refused(folders, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / PAGE).symlink_to(victim)
    with pytest.raises(Fer3dError, match="refusing to write outside"):
        _page(folders, out)
    assert victim.read_text() == "keep me" and (out / PAGE).is_symlink()


def test_the_command_writes_the_page_and_names_it(folders, tmp_path, monkeypatch):
    out = tmp_path / "site"
    args = [*(folders[name] for name in ORDER), "--out", out, "--baseline", folders["optimistic"]]
    result = _invoke(args, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.output == f"leaderboard: {out / PAGE}\n"
    rows = _ours(read_page((out / PAGE).read_text()))
    assert "baseline" in rows["optimistic"].classes


def test_the_leaderboard_never_imports_torch():
    code = (
        "import sys, fer3d_bench.leaderboard, fer3d_bench.cli.leaderboard; "
        "print(sorted(m for m in ('torch', 'timm') if m in sys.modules))"
    )
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
