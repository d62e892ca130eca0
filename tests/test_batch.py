"""``impasto batch`` in one process: planning, the skip rule, the report, exit statuses."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from batch_inputs import TINY, make_inputs
from PIL import Image

import impasto
from impasto.batches import BatchError, ItemStatus, plan
from impasto.batches.existing import Verdict, judge
from impasto.batches.plan import cross_items, expand_inputs, read_pairs
from impasto.cli import main
from impasto.errors import ImpastoError
from impasto.io.files import sha256_file
from impasto.io.metadata import read_provenance

TINY_FLAGS = ["--size", "32", "--iterations", "2", "--seed", "1", "-q"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_inputs(tmp_path_factory.mktemp("batch-inputs"))


@pytest.fixture(scope="module")
def painted(
    inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict, int]:
    """One CLI batch of 3 good photos and a broken one: (OUT_DIR, report, exit status)."""
    photos, style = inputs
    out = tmp_path_factory.mktemp("batch-out") / "out"
    report = out.parent / "report.json"
    args = ["batch", str(photos), "--styles", str(style), "-o", str(out), "--report", str(report)]
    code = main([*args, *TINY_FLAGS])
    return out, json.loads(report.read_text()), code


# --- planning --------------------------------------------------------------------------
def test_inputs_expand_folders_and_globs_in_order(inputs: tuple[Path, Path]) -> None:
    photos, _ = inputs
    names = [p.name for p in expand_inputs([str(photos)])]
    assert names == ["broken.jpg", "photo0.jpg", "photo1.jpg", "photo2.jpg"]
    globbed = expand_inputs([str(photos / "photo*.jpg"), str(photos / "photo1.jpg")])
    assert [p.name for p in globbed] == ["photo0.jpg", "photo1.jpg", "photo2.jpg"]  # once each
    with pytest.raises(BatchError, match=r"nope\.jpg: no such file or folder"):
        expand_inputs([str(photos / "nope.jpg")])
    with pytest.raises(BatchError, match="matches no files"):
        expand_inputs([str(photos / "*.webp")])


def test_outputs_are_named_after_content_and_styles(tmp_path: Path) -> None:
    a, s1, s2 = Path("in/a.jpg"), Path("s/starry.jpg"), Path("s/wave.png")
    items = cross_items([a], [s1, s2], tmp_path)
    assert [i.output.name for i in items] == ["a--starry.png", "a--wave.png"]
    (blend,) = cross_items([a], [s1, s2], tmp_path, blend=True)
    assert blend.output.name == "a--starry+wave.png" and blend.styles == (s1, s2)
    with pytest.raises(BatchError, match=r"x\.jpg and .*x\.jpg would both be written to"):
        cross_items([Path("one/x.jpg"), Path("two/x.jpg")], [s1], tmp_path)


def test_pairs_file_paths_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    csv = tmp_path / "lists" / "pairs.csv"
    csv.write_text("content,style,output\nphotos/a.jpg,s.jpg,\nb.jpg,s.jpg; t.jpg,mine.png\n")
    first, second = read_pairs(csv, tmp_path / "out")
    assert first.content == tmp_path / "lists" / "photos" / "a.jpg"
    assert first.output == tmp_path / "out" / "a--s.png"
    assert second.styles == (tmp_path / "lists" / "s.jpg", tmp_path / "lists" / "t.jpg")
    assert second.output == tmp_path / "out" / "mine.png"
    csv.write_text("photo,painting\na.jpg,s.jpg\n")
    with pytest.raises(BatchError, match="columns content and style"):
        read_pairs(csv, tmp_path)
    csv.write_text("content,style,output\na.jpg,s.jpg,a.jpg\n")
    with pytest.raises(BatchError, match=r"line 2: output a\.jpg must be a \.png"):
        read_pairs(csv, tmp_path)
    with pytest.raises(BatchError, match="either content images and styles, or a pairs file"):
        plan(["a.jpg"], pairs=csv, out_dir=tmp_path)


# --- a whole batch -------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_paints_good_photos_and_names_the_broken_one(painted: tuple[Path, dict, int]) -> None:
    out, report, code = painted
    assert code == 1  # one item failed
    assert sorted(p.name for p in out.iterdir()) == [f"photo{i}--style.png" for i in range(3)]
    items = {Path(i["content"]).name: i for i in report["items"]}
    assert report["summary"] == {"done": 3, "skipped": 0, "failed": 1, "cancelled": 0}
    broken = items["broken.jpg"]
    assert broken["status"] == "failed" and "broken.jpg: cannot read image" in broken["reason"]
    for i in range(3):
        item = items[f"photo{i}.jpg"]
        assert item["status"] == "done" and item["reason"] is None and item["node_id"] is None
        assert item["iterations"] == 2 and item["losses"]["total"] > 0
        assert item["seconds"] > 0 and item["peak_memory_bytes"] > 50e6
        with Image.open(item["output"]) as img:
            assert img.size == (32, 24)
        record = read_provenance(item["output"])
        assert record["content"]["sha256"] == sha256_file(Path(item["content"]))
        assert record["content"]["path"] == str(Path(item["content"]).resolve())
        assert record["settings"]["size"] == 32 and record["settings"]["seed"] == 1


@pytest.mark.slow
def test_second_run_skips_and_other_settings_need_overwrite(
    painted: tuple[Path, dict, int], inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    out, _, _ = painted
    photos, style = inputs
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = impasto.batch([photos], [style], out_dir=out, **TINY)
    assert [r.status for r in again.records] == [ItemStatus.FAILED] + [ItemStatus.SKIPPED] * 3
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps  # untouched
    # A run that draws its own seed takes any recorded seed as its own.
    assert (
        impasto.batch(
            [photos / "photo0.jpg"], [style], out_dir=out, size=32, iterations=2
        ).counts()["skipped"]
        == 1
    )
    bigger = impasto.batch([photos / "photo1.jpg"], [style], out_dir=out, **{**TINY, "size": 48})
    (record,) = bigger.records
    assert record.status is ItemStatus.FAILED and bigger.exit_status == 1
    assert "made with other settings (size 32, now 48); pass --overwrite" in record.reason
    mine = tmp_path / "out"
    mine.mkdir()
    shutil.copy(out / "photo1--style.png", mine)
    redone = impasto.batch(
        [photos / "photo1.jpg"], [style], out_dir=mine, overwrite=True, **{**TINY, "size": 48}
    )
    assert redone.records[0].status is ItemStatus.DONE and redone.exit_status == 0
    with Image.open(mine / "photo1--style.png") as img:
        assert img.size == (48, 36)


@pytest.mark.slow
def test_stop_keeps_finished_items_and_writes_no_partial_one(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    photos, style = inputs
    runs = []

    def stop_in_second_item(event: impasto.batches.BatchEvent) -> None:
        if event.kind == "progress" and event.index == 2:
            runs[0].request_stop()

    report = impasto.batch(
        [photos],
        [style],
        out_dir=tmp_path,
        on_start=runs.append,
        on_event=stop_in_second_item,
        report=tmp_path / "r.json",
        **{**TINY, "iterations": 5},
    )
    statuses = [r.status for r in report.records]
    assert statuses == [
        ItemStatus.FAILED,
        ItemStatus.DONE,
        ItemStatus.CANCELLED,
        ItemStatus.CANCELLED,
    ]
    assert report.interrupted and report.exit_status == 130
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["photo0--style.png"]
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["interrupted"] and written["items"][2]["reason"].startswith("interrupted after")


def test_judge_reads_the_record_of_an_existing_output(tmp_path: Path) -> None:
    settings = impasto.Settings(size=32, seed=3)
    output = tmp_path / "out.png"
    assert judge(output, settings, "c", ["s"]) == (Verdict.ABSENT, "")
    Image.new("RGB", (8, 8)).save(output)
    assert judge(output, settings, "c", ["s"])[1] == "exists and records no impasto settings"
    record = {
        "settings": settings.to_dict(),
        "content": {"sha256": "c"},
        "styles": [{"sha256": "s"}],
    }
    Image.new("RGB", (8, 8)).save(output, pnginfo=_text(record))
    assert judge(output, settings, "c", ["s"])[0] is Verdict.SAME
    assert judge(output, settings.replace(device="cpu", threads=1), "c", ["s"])[0] is Verdict.SAME
    assert judge(output, settings, "other", ["s"])[1] == "exists, made from another content image"
    assert judge(output, settings, "c", ["s", "t"])[1] == "exists, made from other style images"
    changed = judge(output, settings.replace(seed=4, style_weight=10), "c", ["s"])
    assert changed == (
        Verdict.OTHER,
        "exists, made with other settings (style_weight 250.0, now 10.0; seed 3, now 4)",
    )


def _text(record: dict) -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("impasto", json.dumps(record))
    return info


# --- usage errors ----------------------------------------------------------------------------
def test_usage_errors_exit_2_with_one_line(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, style = inputs
    out = str(tmp_path / "out")
    cases = [
        ([str(photos / "missing.jpg"), "--styles", str(style)], "missing.jpg: no such file"),
        ([str(photos), "--styles", str(photos / "broken.jpg")], "broken.jpg: cannot read image"),
        ([str(photos), "--styles", str(style), "--size", "5"], "--size: must be between"),
        ([str(photos), "--styles", str(style), "--task-cpus", "2"], "use them with --ray"),
        ([str(photos)], "no style images given"),
    ]
    for args, message in cases:
        assert main(["batch", *args, "-o", out, "-q"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not any(Path(out).glob("*.png"))


def test_report_is_not_overwritten_unless_it_is_a_report(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, style = inputs
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": true}')
    args = ["batch", str(photos / "broken.jpg"), "--styles", str(style), "-o", str(tmp_path), "-q"]
    assert main([*args, "--report", str(mine)]) == 2
    assert "notes.json: already exists; pass --overwrite" in capsys.readouterr().err
    report = tmp_path / "report.json"
    assert main([*args, "--report", str(report)]) == 1  # the broken content fails its item
    assert main([*args, "--report", str(report)]) == 1  # an earlier report may be replaced
    assert json.loads(report.read_text())["summary"]["failed"] == 1


def test_ray_without_the_extra_names_it(
    inputs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    photos, style = inputs
    args = ["batch", str(photos), "--styles", str(style), "-o", str(tmp_path), "--ray", "-q"]
    assert main(args) == 2
    assert "needs the 'ray' extra: pip install 'impasto[ray]'" in capsys.readouterr().err
    from impasto.distributed import import_ray

    with pytest.raises(ImpastoError, match=r"impasto\[ray\]"):
        import_ray()
