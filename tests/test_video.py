"""Video (Ruder, Dosovitskiy & Brox 2016): flow, temporal loss, reading and writing, the
frame loop end to end. Every video here is made by the test with PyAV."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.errors import SettingsError
from impasto.results import Progress, StopReason
from impasto.video import flow as flows
from impasto.video.io import probe, read_frames, working_size
from impasto.video.mux import KINDS, Timing, write_output
from impasto.video.progress import FrameResult, VideoEta
from impasto.video.settings import VideoSettings, parse_frames, split_settings
from impasto.video.temporal import temporal_loss

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "src/impasto/data/swirls.png"
PHOTO = ROOT / "src/impasto/data/village.png"

# The synthetic pan: a 64x48 window sliding over the example photo by SHIFT pixels a frame.
W, H, SHIFT, FRAMES, FPS = 64, 48, 4, 8, 12


def strip(width: int, height: int) -> np.ndarray:
    """A band of the example photo, ``height`` tall and at least ``width`` wide."""
    img = Image.open(PHOTO).convert("RGB")
    scaled = img.resize((round(img.width * 2 * height / img.height), 2 * height), Image.LANCZOS)
    band = np.asarray(scaled)[height // 2 : height // 2 + height]
    assert band.shape[1] >= width
    return band


def write_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = FPS,
    audio: bool = True,
    rotation: int = 0,
    pix_fmt: str = "yuv444p",
    color_range: str | None = None,
) -> None:
    """An H.264 video of ``frames`` (lossless), with a 440 Hz AAC tone as long as the video."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, pix_fmt
        video.options = {"crf": "0"}
        if color_range:
            video.codec_context.color_range = getattr(av.video.reformatter.ColorRange, color_range)
            video.codec_context.colorspace = 1  # BT.709: a colour description is written
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=16000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame = frame.reformat(format=pix_fmt, dst_color_range=color_range or "MPEG")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            n = 16000 * len(frames) // fps
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)
            samples = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
            samples.sample_rate, samples.pts = 16000, 0
            for packet in [*sound.encode(samples), *sound.encode()]:
                out.mux(packet)


def pan(path: Path, frames: int = FRAMES) -> list[np.ndarray]:
    """The synthetic pan (frame i is the window at i * SHIFT); returns its frames."""
    band = strip(W + SHIFT * frames, H)
    pixels = [band[:, i * SHIFT : i * SHIFT + W] for i in range(frames)]
    write_video(path, pixels)
    return pixels


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in c.decode(video=0)]


def shift_error(frames: list[np.ndarray], shift: int) -> float:
    """Mean squared difference of consecutive frames once the known pan is undone, on the
    pixels both show: frame i at x shows what frame i-1 showed at x + shift."""
    pairs = zip(frames[1:], frames[:-1])
    return float(np.mean([np.mean((b[:, :-shift] - a[:, shift:]) ** 2) for b, a in pairs]))


def coloured(n: int, size: tuple[int, int] = (32, 24)) -> list[np.ndarray]:
    """Frames of one flat colour each, frame k of grey level 20 * k + 10 (to tell them apart)."""
    w, h = size
    return [np.full((h, w, 3), 20 * k + 10, np.uint8) for k in range(n)]


def levels(frames: list[np.ndarray]) -> list[int]:
    return [round((float(np.mean(f)) - 10) / 20) for f in frames]


# --- optical flow and reliability -------------------------------------------------------


def test_dis_flow_finds_a_known_shift_and_warping_undoes_it() -> None:
    band = strip(W + 8, H)
    a, b = band[:, 6 : 6 + W], band[:, 2 : 2 + W]  # b is a moved 4 px to the right
    w = flows.flow(flows.grey(a), flows.grey(b))
    inner = w[8:-8, 8:-16]
    assert np.median(inner[..., 0]) == pytest.approx(4.0, abs=0.1)  # a at x is b at x + 4
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.1)
    warped = flows.warp(b.astype(np.float32), w, cubic=True)
    before = np.abs(a.astype(np.float32) - b).mean()
    after = np.abs(a.astype(np.float32) - warped)[:, : W - 8].mean()
    assert after < before / 5


def test_reliability_by_hand() -> None:
    h, w = 6, 10
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = 2.0  # every pixel of frame i is 2 px to the right in frame j
    forward = -back  # and comes back: consistent
    r = flows.reliability(back, forward)
    # Only the two columns whose target falls past the right edge are disoccluded.
    assert r.disoccluded[:, : w - 2].sum() == 0 and r.disoccluded[:, w - 2 :].all()
    assert not r.motion_boundary.any()
    # A forward flow that does not come back: |w~ + w^|^2 = 16 > 0.01 * (4 + 4) + 0.5.
    assert flows.reliability(back, np.zeros_like(back)).disoccluded.all()
    # A step in the flow: np.gradient gives 1.5 at the two columns beside it, and
    # 1.5^2 = 2.25 > 0.01 * 3^2 + 0.002; elsewhere the gradient is 0.
    step = np.zeros((h, w, 2), np.float32)
    step[:, 5:, 0] = 3.0
    boundary = flows.reliability(step, -step).motion_boundary
    assert boundary[:, 4:6].all() and boundary.sum() == 2 * h
    c = flows.reliability(step, -step).weights
    assert c.dtype == np.float32 and c[:, 4:6].sum() == 0 and c[:, :3].min() == 1


def test_long_term_weights_count_each_pixel_once() -> None:
    c1 = np.array([1, 0, 0, 1], np.float32)
    c2 = np.array([1, 1, 0, 0], np.float32)
    c3 = np.array([1, 1, 1, 0], np.float32)
    got = flows.long_term_weights([c1, c2, c3])
    assert [g.tolist() for g in got] == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]]


def test_temporal_loss_by_hand() -> None:
    x = torch.zeros(1, 3, 1, 2)
    x[0, :, 0, 1] = 2.0
    warped = torch.zeros(2, 3, 1, 2)
    warped[1] = 1.0
    weights = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 1.0]]]])
    # frame 1: (0 + 4) * 3 / 6 = 2; frame 2: only the second pixel, (2 - 1)^2 * 3 / 6 = 0.5
    assert temporal_loss(x, warped, weights).item() == pytest.approx(2.5)


def test_a_loss_given_a_new_content_frame_is_the_loss_built_for_it() -> None:
    from helpers import random_vgg_weights

    from impasto.loss.gatys import GatysLoss
    from impasto.model.vgg import VGG19Features

    net = VGG19Features(random_vgg_weights(), last_layer="relu4_2")
    gen = torch.Generator().manual_seed(0)
    a, b, style, x = (torch.rand(1, 3, 32, 32, generator=gen) * 255 for _ in range(4))
    kw = dict(
        content_weight=5.0,
        content_layers={"relu4_2": 1.0},
        style_weight=500.0,
        style_layers={"relu1_1": 0.5, "relu2_1": 0.5},
        style_blend=[1.0],
        tv_weight=1.0,
    )
    moved = GatysLoss(net, a, [style], **kw)
    targets = list(moved.content_targets.values())
    moved.set_content(b)
    built = GatysLoss(net, b, [style], **kw)
    assert moved(x).as_floats() == pytest.approx(built(x).as_floats(), rel=1e-6)
    assert moved.content_targets["relu4_2"] is targets[0]  # in place: a graph sees it
    with pytest.raises(ValueError, match="another size"):
        moved.set_content(torch.zeros(1, 3, 48, 48))


# --- settings and progress ----------------------------------------------------------------


def test_video_settings_parse_and_name_what_is_wrong() -> None:
    assert parse_frames("10:20") == (10, 20)
    assert parse_frames(":5") == (0, 5) and parse_frames("3:") == (3, None)
    assert VideoSettings(frames="2:").frame_range(10) == (2, 10)
    assert VideoSettings(frames="2:50").frame_range(10) == (2, 10)
    for kwargs, name in (
        ({"frames": "5"}, "frames"),
        ({"frames": "7:3"}, "frames"),
        ({"temporal_weight": -1}, "temporal_weight"),
        ({"temporal_frames": (1, 1)}, "temporal_frames"),
        ({"temporal_frames": (0,)}, "temporal_frames"),
        ({"fps": 0}, "fps"),
        ({"flow": "magic"}, "flow"),
        ({"first_iterations": "many"}, "first_iterations"),
    ):
        with pytest.raises(SettingsError) as err:
            VideoSettings(**kwargs)
        assert err.value.setting == name
    with pytest.raises(SettingsError, match="selects no frame"):
        VideoSettings(frames="20:").frame_range(10)
    assert VideoSettings(temporal_frames=[1, "10"]).temporal_frames == (1, 10)
    general, video = split_settings({"size": 64, "temporal_weight": 0})
    assert general == {"size": 64} and video == {"temporal_weight": 0}
    with pytest.raises(SettingsError, match="did you mean temporal_weight"):
        split_settings({"temporal_weigth": 1})


def _step(iteration: int, elapsed: float, eta: float = 0.0) -> Progress:
    return Progress(iteration, 100, 0, 1, (8, 8), iteration, {}, 0.0, elapsed, eta, lambda: None)


def test_video_eta_by_hand() -> None:
    eta = VideoEta(planned=100)
    # The first frame: its own estimate (30 s) plus 4 later frames of 100 iterations at
    # its rate (20 s / 10 iterations).
    assert eta.left(_step(10, 20.0, eta=30.0), True, 4) == pytest.approx(30 + 400 * 2)
    done = FrameResult(0, 6, Image.new("RGB", (8, 8)), {}, 50, 100.0, StopReason.DONE)
    eta.finished(done, first=True)
    later = FrameResult(1, 6, Image.new("RGB", (8, 8)), {}, 40, 20.0, StopReason.CONVERGED)
    eta.finished(later, first=False)
    # Later frames take 40 iterations at 0.5 s: 10 more for this one, then 3 frames.
    assert eta.left(_step(30, 15.0), False, 3) == pytest.approx((10 + 120) * 0.5)


# --- reading and writing ------------------------------------------------------------------


def test_probe_and_resampling_pick_the_right_frames(tmp_path: Path) -> None:
    path = tmp_path / "in.mp4"
    write_video(path, coloured(6), fps=6)
    info = probe(path)
    assert (info.width, info.height, info.rotation, info.audio) == (32, 24, 0, True)
    assert info.rate == 6 and len(info.times) == 6
    assert info.times[1] - info.times[0] == pytest.approx(1 / 6)
    own = [np.asarray(img) for _, img in read_frames(info, info.timeline(None), (32, 24))]
    assert levels(own) == [0, 1, 2, 3, 4, 5]
    # At 15 fps each frame shows 2.5 times: 15 frames, the last shown to the end.
    times = info.timeline(15)
    assert len(times) == 15
    resampled = [np.asarray(img) for _, img in read_frames(info, times, (32, 24))]
    assert levels(resampled) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5]
    # At 3 fps every other frame; from index 2 on (as a resumed run reads them).
    later = list(read_frames(info, info.timeline(3), (16, 12), start=2))
    assert [k for k, _ in later] == [2] and later[0][1].size == (16, 12)
    assert levels([np.asarray(later[0][1])]) == [4]


def test_working_size_is_even_for_video_codecs(tmp_path: Path) -> None:
    path = tmp_path / "in.mp4"
    write_video(path, coloured(2, (50, 30)), rotation=90, audio=False)
    info = probe(path)
    assert info.rotation == 90 and info.upright_size == (30, 50)
    assert working_size(info, 33, even=True) == (20, 32)  # 19.8 x 33, made even
    assert working_size(info, 33, even=False) == (20, 33)
    assert working_size(info, 0, even=True) == (30, 50)


def _timing(info: impasto.video.io.VideoInfo) -> Timing:
    return Timing(info.timeline(None), info.rate, info.time_base, (-np.inf, np.inf))


def test_writing_keeps_audio_rotation_timing_and_colour_range(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    stored = [np.zeros((24, 32, 3), np.uint8) for _ in range(4)]
    for k, f in enumerate(stored):
        f[..., 1] = 40 * k
        f[:, :8] = 255  # a white band on the left of the stored picture
    write_video(src, stored, rotation=90, color_range="JPEG")
    info = probe(src)
    assert info.color_range == 2  # full range
    upright = [Image.fromarray(np.rot90(f).copy()) for f in stored]  # as shown: 24 x 32
    out = tmp_path / "out.mp4"
    note = write_output(out, KINDS[".mp4"], lambda k: upright[k], 4, info, _timing(info))
    assert note is None
    again = probe(out)
    assert (again.width, again.height, again.rotation, again.audio) == (32, 24, 90, True)
    assert again.color_range == 2 and again.rate == FPS
    assert np.allclose(again.times, info.times)
    frames = decode(out)  # as stored: the white band is back on the left
    assert frames[0][:, :6].mean() > 200 and frames[0][:, 12:].mean() < 60
    with av.open(str(out)) as c, av.open(str(src)) as s:
        assert c.streams.audio[0].codec_context.name == "aac"
        copied = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
        original = [bytes(p) for p in s.demux(s.streams.audio[0]) if p.size]
    assert copied == original  # packet for packet


def test_gif_webm_and_folder_outputs(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_video(src, coloured(3))
    info = probe(src)
    frames = [Image.fromarray(f) for f in coloured(3)]
    gif = tmp_path / "out.gif"
    assert write_output(gif, KINDS[".gif"], frames.__getitem__, 3, info, _timing(info))
    with Image.open(gif) as g:
        assert g.n_frames == 3 and g.info["duration"] == 80  # 1/12 s, in GIF's 10 ms steps
    folder = tmp_path / "frames"
    write_output(folder, KINDS[""], frames.__getitem__, 3, info, _timing(info))
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    webm = tmp_path / "out.webm"
    note = write_output(webm, KINDS[".webm"], frames.__getitem__, 3, info, _timing(info))
    assert "audio re-encoded from aac to libopus" in note
    again = probe(webm)
    assert len(again.times) == 3 and again.audio
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


# --- bad input: one line, exit 2, before any work -------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_bad_videos_and_outputs_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(5000))
    good = tmp_path / "good.mp4"
    write_video(good, coloured(2))
    (tmp_path / "taken.mp4").write_bytes(b"x")
    cases = [
        ([str(broken), str(STYLE), "-o", str(tmp_path / "a.mp4")], "broken.mp4: not a video"),
        ([str(tmp_path / "none.mp4"), str(STYLE), "-o", str(tmp_path / "a.mp4")], "no such file"),
        ([str(good), str(STYLE), "-o", str(tmp_path / "a.avi")], "cannot write '.avi' videos"),
        ([str(good), str(STYLE), "-o", str(tmp_path / "taken.mp4")], "already exists"),
        ([str(good), str(STYLE), "-o", str(tmp_path / "b.mp4"), "--frames", "9:"], "--frames"),
        ([str(good), str(tmp_path / "none.png"), "-o", str(tmp_path / "b.mp4")], "none.png"),
    ]
    for args, expected in cases:
        code, err = run_cli(["video", *args, "-q"], capsys)
        assert code == 2, err
        assert expected in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    assert not list(tmp_path.glob("*.frames"))  # nothing started


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from impasto.video.deps import require

    monkeypatch.setitem(sys.modules, "cv2", None)  # what an uninstalled module looks like
    with pytest.raises(impasto.ImpastoError, match=r"pip install 'impasto\[video\]'"):
        require("cv2")


def test_a_work_folder_of_another_run_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "in.mp4"
    write_video(good, coloured(2))
    work = tmp_path / "out.mp4.frames"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    code, err = run_cli(["video", str(good), str(STYLE), "-o", str(tmp_path / "out.mp4")], capsys)
    assert code == 2 and "files impasto did not write" in err
    assert (work / "notes.txt").read_text() == "mine"


# --- end to end with the real network ---------------------------------------------------------

# One thread: on a machine others share, two threads spin waiting for each other.
SMALL = ["--size", "64", "--seed", "3", "--threads", "1"]
SMALL += ["--first-iterations", "30", "--iterations", "12"]


@pytest.fixture(scope="module")
def painted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The pan painted with the temporal loss (kept frames) and without it."""
    tmp = tmp_path_factory.mktemp("pan")
    source = tmp / "pan.mp4"
    pan(source)
    out, independent = tmp / "out.mp4", tmp / "independent.mp4"
    report = ["--keep-frames", "--report", str(tmp / "report.json")]
    assert main(["video", str(source), str(STYLE), "-o", str(out), *SMALL, *report, "-q"]) == 0
    apart = ["--temporal-weight", "0", "-q"]
    assert main(["video", str(source), str(STYLE), "-o", str(independent), *SMALL, *apart]) == 0
    return {"source": source, "out": out, "independent": independent, "tmp": tmp}


@pytest.mark.slow
def test_temporal_loss_cuts_the_flicker_of_a_pan(
    painted: dict[str, object], record_property: pytest.RecordProperty
) -> None:
    out, independent = Path(painted["out"]), Path(painted["independent"])
    info = probe(out)
    assert len(info.times) == FRAMES and (info.width, info.height) == (W, H) and info.audio
    consistent = shift_error(decode(out), SHIFT)
    flickering = shift_error(decode(independent), SHIFT)
    record_property("temporal_error", consistent)
    record_property("independent_error", flickering)
    print(f"\ntemporal error: {consistent:.1f} with the temporal loss, {flickering:.1f} without")
    assert consistent <= 0.6 * flickering
    # Both are paintings, not the photo: the style moved every frame far from it.
    photo = decode(Path(painted["source"]))
    assert np.mean((decode(out)[3] - photo[3]) ** 2) > 200
    report = json.loads((Path(painted["tmp"]) / "report.json").read_text())
    stats = report["frame_stats"]
    assert [s["frame"] for s in stats] == list(range(FRAMES)) and report["written"]
    assert stats[0]["iterations"] <= 30 and all(s["iterations"] <= 12 for s in stats[1:])
    assert all(s["losses"]["temporal"] > 0 for s in stats[1:])


@pytest.mark.slow
def test_interrupted_run_resumes_at_the_next_frame_to_the_same_frames(
    painted: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, kept = Path(painted["source"]), Path(painted["out"]).with_suffix(".mp4.frames")
    out = tmp_path / "four"  # a folder of PNG frames
    args = ["video", str(source), str(STYLE), "-o", str(out), *SMALL, "--frames", "0:4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto", *args], env=env, stderr=subprocess.PIPE, text=True
    )
    work = tmp_path / "four.frames"
    deadline = time.monotonic() + 600
    while not (work / "000001.png").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    done = sorted(p.name for p in work.glob("0*.png"))
    assert 2 <= len(done) < 4 and not out.exists()
    code, err = run_cli(args, capsys)
    assert code == 0 and f"continuing at frame {len(done) + 1}" in err  # not painted again
    assert not work.exists()
    assert len(list(out.glob("*.png"))) == 4
    for k in range(4):  # the same pixels as the uninterrupted run painted
        resumed = np.asarray(Image.open(out / f"{k:06d}.png"))
        assert np.array_equal(resumed, np.asarray(Image.open(kept / f"{k:06d}.png"))), k


@pytest.mark.slow
def test_a_run_stopped_for_good_writes_the_frames_it_painted_with_their_audio(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.mp4"
    pan(source, frames=6)  # half a second, with a tone as long
    out = tmp_path / "part.mp4"
    settings = impasto.Settings(size=32, iterations=2, seed=0, threads=1)
    st = impasto.video.VideoStylizer(
        source, STYLE, out, settings, VideoSettings(first_iterations=3)
    )
    st.on_frame.append(lambda f: st.request_stop() if f.index == 1 else None)
    for _ in st.run():
        pass
    assert not st.finish().written and not out.exists()  # a part only when asked for
    result = st.finish(part=True)
    assert result.written and result.part and (result.done, result.frames) == (2, 6)
    assert "the first 2 of 6 frames" in result.message()
    assert st.work.path.is_dir()  # the frames stay: the same command can still finish it
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 2
    with av.open(str(out)) as c:
        audio = [f for f in c.decode(audio=0)]
        seconds = sum(f.samples for f in audio) / audio[0].sample_rate
    assert 0.1 < seconds < 2 / FPS + 0.15  # the tone under two frames, not the whole clip


@pytest.mark.slow
def test_stylize_video_api_calls_back_per_frame(tmp_path: Path) -> None:
    source = tmp_path / "in.mp4"
    pan(source, frames=5)
    seen: list[tuple[int, int, tuple[int, int]]] = []
    steps: list[tuple[int, int, float | None]] = []
    result = impasto.stylize_video(
        source,
        STYLE,
        tmp_path / "out.gif",
        size=32,
        frames="1:4",
        temporal_frames=(1, 2),  # long-term: the third frame is held to the first too
        first_iterations=5,
        iterations=3,
        threads=1,
        on_frame=lambda f: seen.append((f.index, f.frames, f.image.size)),
        callback=lambda p: steps.append((p.frame, p.step.iteration, p.step.losses.get("temporal"))),
    )
    assert result.written and result.frames == 3 and result.note == "no audio in a GIF"
    assert seen == [(0, 3, (32, 24)), (1, 3, (32, 24)), (2, 3, (32, 24))]
    assert steps[0][0] == 0 and steps[-1][0] == 2
    assert all(t is None for k, _, t in steps if k == 0)  # no earlier frame to hold to
    # Each later frame starts on the warped frame it is held to (a temporal term of 0),
    # then moves away from it under the style loss and pays for it.
    assert all(t is not None and (t > 0) == (i > 1 or k == 2) for k, i, t in steps if k > 0)
    with Image.open(tmp_path / "out.gif") as gif:
        assert gif.n_frames == 3


def test_the_video_options_are_documented() -> None:
    text = (ROOT / "docs/video.md").read_text()
    defaults = VideoSettings()
    for name in VideoSettings.__dataclass_fields__:
        assert f"`--{name.replace('_', '-')}`" in text, name
    assert f"| `--temporal-weight` | `{defaults.temporal_weight:g}` |" in text
