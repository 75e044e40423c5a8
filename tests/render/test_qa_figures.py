"""The QA pictures show why a sample ranks where it does, and only where something ranks.

Issue 28: the Bosphorus sheet ranks planted scans first by their ".lm2 gap" and now draws the
.lm2 points and their .lm3 vertices; CalD3r & MenD3s (every sample "IoU 1.000") gets no QA
sheet and a contact sheet of both datasets; a sheet of one sample keeps its heading inside the
figure; the contour colours have a colour bar.
"""

import shutil

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection

from fer3d_bench.render import overlay
from fer3d_bench.render.layout import OVERLAY_PNG, QA_PNG
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.render.run import render_dataset

SIZE = 48  # the tiny world's


@pytest.fixture
def drawn(monkeypatch):
    """Every call of overlay.draw_panels: (panels, target, heading), then drawn as it would be."""
    calls = []
    real = overlay.draw_panels

    def spy(panels, target, columns=4, heading=""):
        calls.append((panels, target, heading))
        return real(panels, target, columns, heading)

    monkeypatch.setattr(overlay, "draw_panels", spy)
    return calls


def _rerender(tiny_merged, dataset, tmp_path, capsys=None):
    """render-depth of one dataset of the tiny world again, into a copy of its render folder:
    every sample is reused, the pictures are drawn anew."""
    folder, roots, _ = tiny_merged
    out = tmp_path / dataset
    shutil.copytree(folder / "render" / dataset, out)
    for picture in (QA_PNG, OVERLAY_PNG):
        (out / picture).unlink(missing_ok=True)
    table = render_dataset(roots[dataset], dataset, out, RenderOptions(size=SIZE), progress=True)
    return out, table


def test_the_bosphorus_sheet_draws_the_landmarks_it_ranks_by(tiny_merged, tmp_path, drawn):
    out, table = _rerender(tiny_merged, "bosphorus", tmp_path)
    assert (out / QA_PNG).is_file()
    ((panels, target, _),) = [call for call in drawn if call[1].name == QA_PNG]
    first = panels[0]
    assert first.title.splitlines()[1].startswith("low-quality: .lm2 gap")  # planted, first
    assert set(first.marks) == {".lm2", ".lm3 vertex"}
    lm2, lm3 = first.marks[".lm2"], first.marks[".lm3 vertex"]
    assert lm2.shape == lm3.shape and lm2.shape[0] >= 3
    planted_gap = np.median(np.linalg.norm(lm2 - lm3, axis=1))
    ok = [p for p in panels if p.title.splitlines()[1].startswith("ok")]
    ok_gap = np.median(np.linalg.norm(ok[0].marks[".lm2"] - ok[0].marks[".lm3 vertex"], axis=1))
    assert planted_gap > 3 * ok_gap  # the picture shows why it ranks first
    assert ((lm3 > -SIZE) & (lm3 < 2 * SIZE)).all()  # in the crop's pixels, near the face
    figure = overlay.panel_figure(panels, heading="h")
    markers = [c for ax in figure.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert {c.get_label() for c in markers} == {".lm2", ".lm3 vertex"}
    assert len(markers) == 2 * len(panels)


def test_reused_samples_are_said_reused(tiny_merged, tmp_path, capsys):
    _, table = _rerender(tiny_merged, "bosphorus", tmp_path)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    n = len(table)
    assert line.startswith(f"render-depth bosphorus ({n} samples reused): 100% {n}/{n}"), line
    assert "0sample" not in line


def test_cald3r_mend3s_has_no_qa_sheet_and_a_contact_sheet_of_both(tiny_merged, tmp_path, drawn):
    out, table = _rerender(tiny_merged, "cald3r-mend3s", tmp_path)
    assert set(table["qa_figure"]) == {"IoU 1.000 (bar 0.5)"}  # nothing ranks
    assert not overlay.ranks(table)
    assert not (out / QA_PNG).exists() and (out / OVERLAY_PNG).is_file()
    ((panels, _, _),) = [call for call in drawn if call[1].name == OVERLAY_PNG]
    names = {row.sample_id.split(":", 1)[1]: row.dataset for row in table.itertuples()}
    shown = {names[panel.title.splitlines()[0]] for panel in panels}
    assert shown == {"cald3r", "mend3s"}


def test_a_sheet_ranks_where_a_sample_is_flagged_or_the_figures_differ():
    same = pd.DataFrame({"status": ["ok", "ok"], "qa_ratio": [0.0, 0.0]})
    assert not overlay.ranks(same)
    assert overlay.ranks(same.assign(qa_ratio=[0.1, 0.4]))
    assert overlay.ranks(same.assign(status=["ok", "low-quality"]))


def test_a_sheet_of_one_sample_keeps_its_heading_and_has_a_colour_bar():
    depth = np.zeros((SIZE, SIZE), np.uint16)
    depth[8:40, 10:38] = np.linspace(60000, 65000, 28, dtype=np.uint16)[None, :]
    panel = overlay.Panel(np.zeros((SIZE, SIZE, 3), np.uint8), depth, "bs000_E_FEAR_0\nlow")
    heading = "1 worst-aligned of 1 (1 flagged low-quality)"
    figure = overlay.panel_figure([panel], heading=heading)
    renderer = FigureCanvasAgg(figure).get_renderer()
    box = figure.bbox
    texts = [t for t in figure.texts if t.get_text()]
    assert heading.split()[0] in texts[0].get_text()
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, text.get_text()
        assert box.y0 <= extent.y0 and extent.y1 <= box.y1, text.get_text()
    labels = [ax.get_ylabel() for ax in figure.axes]
    assert "contours: mm behind the nearest face point" in labels  # the colour bar
