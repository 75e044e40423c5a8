"""A worker makes its renderer again every RECYCLE_RENDERERS samples: an OSMesa context keeps
some memory of every render, so one kept for a whole dataset grows with its size."""

from fer3d_bench.render import worker
from fer3d_bench.render.run import render_dataset
from fer3d_bench.synthetic import SampleConfig, make_sample


def test_the_renderer_is_made_again_every_so_many_samples(tmp_path, monkeypatch):
    config = SampleConfig(
        bu3dfe_subjects=1, bosphorus_subjects=0, cald3r_subjects=0, mend3s_subjects=0
    )
    make_sample(tmp_path / "sample", config)
    made, closed = [], []
    real = worker.make_renderer

    def counted(*args, **kwargs):
        renderer = real(*args, **kwargs)
        close = renderer.close
        renderer.close = lambda: closed.append(1) or close()
        made.append(renderer)
        return renderer

    monkeypatch.setattr(worker, "make_renderer", counted)
    monkeypatch.setattr(worker, "RECYCLE_RENDERERS", 10)
    table = render_dataset(
        tmp_path / "sample" / "bu3dfe", "bu3dfe", tmp_path / "out", progress=False
    )
    assert len(table) == 25 and (table["status"] != "failed").all()
    # samples 1-9, 10-19 and 20-25: three renderers, each closed
    assert len(made) == 3 and len(closed) == 3
