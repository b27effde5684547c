"""The machine line every benchmark report quotes."""

from __future__ import annotations

from pathlib import Path

from kvopt.bench import machine


def test_cpu_model_reads_the_model_name(monkeypatch) -> None:
    text = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000 @ 3.0GHz\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: text)
    assert machine.cpu_model() == "Test CPU 9000 @ 3.0GHz"


def test_cpu_model_falls_back_without_proc(monkeypatch) -> None:
    def missing(self, *args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr(Path, "read_text", missing)
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    assert machine.cpu_model() == "unknown CPU"
