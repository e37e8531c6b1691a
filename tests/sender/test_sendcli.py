"""``gancodec send``: exit codes, error messages, the report table (the full run is in the e2e test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.sendcli import format_report, send_main
from tests.sender.servers import free_port, png_bytes, tiny_image


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert send_main([str(tmp_path), "--sender", "http://127.0.0.1:1"]) == 2
    assert "no images" in capsys.readouterr().err


def test_sender_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(tiny_image(1)))
    assert send_main([str(tmp_path), "--sender", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "cannot reach the sender" in capsys.readouterr().err


def test_quality_options_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        send_main([str(tmp_path), "--quality", "50", "--match-jpeg", "75"])


def test_report_table() -> None:
    t = {"id": "t1", "status": "delivered", "error": None, "delivery": {"receiver": {"id": "b1"}},
         "result": {"bytes": {"total": 1000, "jpeg": 800, "update": 100, "header": 100}, "bpp": 1.25,
                    "ref_jpeg_bytes": 1200, "saving": 1 / 6, "decision": {"chosen": "delta"},
                    "images": [{"name": "ladybird", "width": 64, "height": 48, "ref_jpeg_bytes": 1200,
                                "quality": 70, "jpeg_bytes": 800, "psnr_ref": 30.0, "psnr_payload": 29.5,
                                "psnr": 30.1}]}}
    text = format_report(t)
    assert "transfer t1: delivered" in text
    assert "ladybird" in text and "80.0%" in text and "30.10" in text
    assert "saving +16.7%" in text and "plan: delta" in text and '{"id": "b1"}' in text
    assert format_report({"id": "t2", "status": "failed", "error": "boom"}) == "transfer t2: failed\nerror: boom"
