"""Video: seconds per frame, iterations per frame, and flicker against painting frames apart.

    python benchmarks/video.py IMAGES_DIR [--sizes 256 512] [--frames 10 4] [--device cpu]

The clip is made from IMAGES_DIR/tubingen.jpg (1024x768): a 768x576 window that pans
12 px to the right per frame, encoded as H.264 (yuv420p, CRF 12, 12 fps). At 256 px
the window moves exactly 4 px a frame and at 512 px 8 px, so the painted frames can
be compared with the frame before them once that known shift is undone (mean
squared difference in 8-bit RGB over the pixels both frames show): the temporal
error. Each size is painted twice with IMAGES_DIR/starry_night.jpg, with the
temporal loss (the defaults) and with --temporal-weight 0 (every frame painted on
its own, from its content frame, as a single image would be), each frame after the
first running until the loss stops improving (--tolerance, at most --cap
iterations). Writes benchmarks/results/video-<device>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import impasto

HERE = Path(__file__).resolve().parent
WINDOW, STEP, FPS = (768, 576), 12, 12


def make_clip(photo: Path, path: Path, frames: int) -> None:
    """The pan over ``photo`` as an H.264 clip (see the module's docstring)."""
    import av

    img = np.asarray(Image.open(photo).convert("RGB"))
    w, h = WINDOW
    top = (img.shape[0] - h) // 2
    if STEP * (frames - 1) + w > img.shape[1]:
        raise SystemExit(f"at most {(img.shape[1] - w) // STEP + 1} frames fit in the pan")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(frames):
            window = np.ascontiguousarray(img[top : top + h, i * STEP : i * STEP + w])
            frame = av.VideoFrame.from_ndarray(window, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def shift_error(folder: Path, shift: int) -> float:
    frames = [np.asarray(Image.open(p), np.float64) for p in sorted(folder.glob("0*.png"))]
    pairs = zip(frames[1:], frames[:-1])
    return float(np.mean([np.mean((b[:, :-shift] - a[:, shift:]) ** 2) for b, a in pairs]))


def paint(clip: Path, style: Path, out: Path, size: int, frames: int, args, **video) -> dict:
    curves: dict[int, list[float]] = {}
    cpu = [time.process_time()]  # CPU seconds: far steadier than wall time on a shared machine

    def record(p: impasto.video.VideoProgress) -> None:
        curves.setdefault(p.frame, []).append(p.step.best_total)

    def finished(frame: impasto.video.FrameResult) -> None:
        cpu.append(time.process_time())

    t0 = time.perf_counter()
    result = impasto.stylize_video(
        clip,
        style,
        out,
        size=size,
        frames=f"0:{frames}",
        iterations=args.cap,
        device=args.device,
        threads=args.threads,
        callback=record,
        on_frame=finished,
        seed=0,
        overwrite=True,
        **video,
    )
    wall = time.perf_counter() - t0
    stats = result.frame_stats
    later = stats[1:]
    return {
        "temporal_weight": video.get("temporal_weight", impasto.VideoSettings().temporal_weight),
        "frames": len(stats),
        "wall_seconds": round(wall, 1),
        "first_frame": {
            "seconds": stats[0]["seconds"],
            "cpu_seconds": round(cpu[1] - cpu[0], 1),
            "iterations": stats[0]["iterations"],
        },
        "later_frames_cpu_seconds": [round(float(d), 1) for d in np.diff(cpu[1:])],
        "later_frames_seconds": [s["seconds"] for s in later],
        "later_frames_iterations": [s["iterations"] for s in later],
        "seconds_per_later_frame": round(float(np.mean([s["seconds"] for s in later])), 2),
        "cpu_seconds_per_later_frame": round(float(np.mean(np.diff(cpu[1:]))), 2),
        "iterations_per_later_frame": round(float(np.mean([s["iterations"] for s in later])), 1),
        # Iterations until the best loss was within 1% of where the frame ended.
        "later_frames_iterations_to_1pct": [
            next(i + 1 for i, v in enumerate(c) if v <= c[-1] * 1.01)
            for k, c in sorted(curves.items())
            if k > 0
        ],
        "temporal_error": round(shift_error(out, STEP * size // WINDOW[0]), 1),
        # What the temporal loss costs the painting: the Gatys terms of the later frames.
        "later_frames_loss": {
            term: float(np.mean([s["losses"][term] for s in later]))
            for term in ("content", "style", "tv")
        },
    }


def machine() -> dict:
    from impasto.devices import machine_facts

    return machine_facts()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", type=Path, help="the folder holding tubingen.jpg, starry_night.jpg")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--frames", type=int, nargs="+", default=[10, 4], help="frames per size")
    p.add_argument("--cap", type=int, default=300, help="iterations at most per later frame")
    p.add_argument(
        "--first-iterations",
        type=int,
        nargs="+",
        default=[500, 100],
        help="iterations of the first frame, per size",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = one per core)")
    p.add_argument(
        "--weights",
        nargs="+",
        default=["default", "0"],
        help="temporal weights to paint with (0 = frames painted apart)",
    )
    p.add_argument("--work", type=Path, default=Path("video-bench"))
    p.add_argument("--name", default=None, help="results file name (default video-DEVICE)")
    args = p.parse_args()
    args.work.mkdir(exist_ok=True)
    clip = args.work / "tubingen-pan.mp4"
    make_clip(args.images / "tubingen.jpg", clip, max(args.frames))
    style = args.images / "starry_night.jpg"
    out = HERE / "results" / f"{args.name or 'video-' + args.device.split(':')[0]}.json"
    runs = json.loads(out.read_text())["runs"] if out.exists() else []
    for size, frames, first in zip(args.sizes, args.frames, args.first_iterations):
        for weight in args.weights:
            video = {"first_iterations": first}
            if weight != "default":
                video["temporal_weight"] = float(weight)
            name = f"{size}-{weight}"
            run = {
                "size": size,
                **paint(clip, style, args.work / name, size, frames, args, **video),
            }
            print(json.dumps(run), flush=True)
            runs = [
                r
                for r in runs
                if (r["size"], r["temporal_weight"]) != (size, run["temporal_weight"])
            ] + [run]
            out.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
