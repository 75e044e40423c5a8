"""progress(): whole lines in logs, normal bars on terminals, nothing when disabled."""

import io
import time

import pytest

from fer3d_bench.progress import ENV_VAR, progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def lines_of(out: str) -> list[str]:
    """The output as whole lines: no redraws, no escapes, every line ended and non-empty."""
    assert "\r" not in out
    assert "\x1b" not in out
    assert out == "" or out.endswith("\n")
    lines = out.split("\n")[:-1]
    assert all(lines)
    return lines


def test_final_line_holds_count_total_and_unit():
    s = io.StringIO()
    for _ in progress(range(120), desc="render-depth bu3dfe", unit="sample", stream=s):
        pass
    (line,) = lines_of(s.getvalue())
    assert line.startswith("render-depth bu3dfe: ")
    assert "120/120" in line
    assert "sample/s" in line


def test_tiny_interval_writes_intermediate_lines():
    s = io.StringIO()
    with progress(total=5, desc="folds", unit="fold", stream=s, line_interval=0) as bar:
        for _ in range(5):
            bar.update()
    lines = lines_of(s.getvalue())
    assert [line.split()[2] for line in lines] == ["1/5", "2/5", "3/5", "4/5", "5/5"]


def test_large_interval_writes_only_the_final_line():
    s = io.StringIO()
    with progress(total=50, desc="build", stream=s, line_interval=1e9) as bar:
        for _ in range(50):
            bar.update()
            bar.set_postfix_str("loss=0.1")
    (line,) = lines_of(s.getvalue())
    assert "50/50" in line
    assert "loss=0.1" in line


def test_at_most_one_line_per_interval():
    s = io.StringIO()
    bar = progress(total=10, stream=s, line_interval=10)
    now = [time.time() + 1]
    bar._time = lambda: now[0]
    bar.update()  # 1 s after creation: quiet
    now[0] += 5
    bar.update()  # 6 s: quiet
    bar.refresh()
    now[0] += 5
    bar.update()  # 11 s: one line
    bar.update()
    now[0] += 3
    bar.update()  # 3 s after the line: quiet
    assert [line.split()[1] for line in lines_of(s.getvalue())] == ["3/10"]
    bar.close()
    assert len(lines_of(s.getvalue())) == 2


def test_unknown_total_counts():
    s = io.StringIO()
    for _ in progress(iter(range(7)), desc="scan", unit="sample", stream=s):
        pass
    (line,) = lines_of(s.getvalue())
    assert line.startswith("scan: 7sample [")


def test_nested_leave_false_bar_writes_nothing():
    s = io.StringIO()
    with progress(total=3, desc="folds", unit="fold", stream=s, line_interval=0) as outer:
        for _ in range(3):
            for _ in progress(range(4), desc="epoch", leave=False, stream=s, line_interval=0):
                pass
            outer.update()
    lines = lines_of(s.getvalue())
    assert lines and all(line.startswith("folds: ") for line in lines)
    assert "3/3" in lines[-1]


def test_nested_leave_true_bars_write_plain_lines():
    s = io.StringIO()
    with progress(total=2, desc="outer", stream=s) as outer:
        inner = progress(total=2, desc="inner", stream=s, line_interval=0)
        assert inner.pos != outer.pos  # tqdm does see it as nested
        inner.update(2)
        inner.close()
        outer.update(2)
    lines = lines_of(s.getvalue())
    assert [line.split(":")[0] for line in lines] == ["inner", "outer"]


def test_reset_restarts_the_count():
    s = io.StringIO()
    bar = progress(total=3, desc="epoch", stream=s, line_interval=1e9)
    bar.update(3)
    bar.reset(total=4)
    bar.update(4)
    bar.close()
    (line,) = lines_of(s.getvalue())
    assert "4/4" in line


def test_external_write_mode_and_write():
    s = io.StringIO()
    with progress(total=2, desc="folds", stream=s, line_interval=0) as bar:
        bar.update()
        with bar.external_write_mode(file=s):
            s.write("fold 1: acc 0.81\n")
        with bar.external_write_mode():  # default file (stdout) works too
            pass
        bar.write("fold 2: acc 0.79", file=s)
        bar.update()
    lines = lines_of(s.getvalue())
    messages = [line for line in lines if not line.startswith("folds: ")]
    assert messages == ["fold 1: acc 0.81", "fold 2: acc 0.79"]
    assert lines.index(messages[0]) > 0  # after the line for 1/2
    assert "2/2" in lines[-1]


def test_final_line_on_exception():
    s = io.StringIO()
    with pytest.raises(RuntimeError), progress(total=5, desc="render", stream=s) as bar:
        bar.update(2)
        raise RuntimeError("boom")
    (line,) = lines_of(s.getvalue())
    assert "2/5" in line


def use_every_method(bar):
    for _ in bar:
        pass
    bar.update(2)
    bar.set_postfix_str("x")
    bar.set_postfix(loss=1.0)
    bar.set_description("d")
    bar.refresh()
    bar.reset(total=3)
    with bar.external_write_mode():
        pass
    bar.close()
    bar.close()


def test_disabled_writes_nothing():
    s = FakeTTY()
    bar = progress(range(3), desc="x", enabled=False, stream=s)
    assert bar.disable
    use_every_method(bar)
    assert s.getvalue() == ""


def test_line_bar_supports_the_same_methods():
    s = io.StringIO()
    use_every_method(progress(range(3), desc="x", stream=s, line_interval=0))
    assert lines_of(s.getvalue())


def test_env_off_disables(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "off")
    s = FakeTTY()
    bar = progress(range(3), stream=s)
    assert bar.disable
    list(bar)
    assert s.getvalue() == ""


def test_tty_gets_a_normal_bar():
    s = FakeTTY()
    for _ in progress(range(3), desc="x", stream=s):
        pass
    assert "\r" in s.getvalue()
    assert "3/3" in s.getvalue()


def test_env_forces_lines_on_a_tty(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "lines")
    s = FakeTTY()
    for _ in progress(range(3), desc="x", stream=s):
        pass
    assert len(lines_of(s.getvalue())) == 1


def test_env_forces_bars_on_a_file(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "Bars")
    s = io.StringIO()
    for _ in progress(range(3), stream=s):
        pass
    assert "\r" in s.getvalue()


def test_env_unknown_value_warns_and_chooses(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "fancy")
    s = io.StringIO()
    with pytest.warns(UserWarning, match=ENV_VAR):
        bar = progress(range(3), stream=s)
    list(bar)
    assert len(lines_of(s.getvalue())) == 1
