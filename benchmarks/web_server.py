"""The web server under load, as a user runs it: ``impasto serve`` in a subprocess on
127.0.0.1, driven over HTTP.

    python benchmarks/web_server.py memory [--compare]   # uploads of huge float TIFFs
    python benchmarks/web_server.py fuzz [--examples N]  # schemathesis' generated requests

``memory`` sends 8 concurrent requests of five 25-megapixel float TIFFs (compressed to
about 170 kB each, made here) and then 8 of two, and reports the server's resident memory
(sampled every 50 ms from /proc), its answers and how fast it kept answering
``GET /api/settings`` meanwhile. ``--compare`` repeats the first load with the limits
lifted (``--max-decodes 8 --max-request-megapixels 125``), as the server was without them.
``fuzz`` runs the schemathesis command line against the server's OpenAPI schema, bounded
in examples and time, and counts the requests and the server errors (5xx) in its HAR log.
Both write JSON and Markdown to ``benchmarks/results/`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

try:
    import httpx2 as httpx
except ImportError:
    import httpx

RESULTS = Path(__file__).resolve().parent / "results"


# --- the server ---------------------------------------------------------------------------------
class Server:
    """``impasto serve`` on a free loopback port; its memory sampled while it runs."""

    def __init__(self, workdir: Path, *options: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir.with_suffix(".log")
        argv = [sys.executable, "-m", "impasto", "serve", "--port", str(self.port)]
        argv += ["--workdir", str(workdir), "--device", "cpu", *options]
        with open(self.log, "wb") as err:
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start: {self.log.read_text()}")
            try:
                httpx.get(self.url + "/api/settings", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        self.peak = self.rss()
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) * 1024

    def _sample(self) -> None:
        while self._sampling and self.process.poll() is None:
            try:
                self.peak = max(self.peak, self.rss())
            except (OSError, IndexError):
                return
            time.sleep(0.05)

    def stop(self) -> float:
        """SIGTERM; the seconds until the process was gone."""
        self._sampling = False
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        return time.monotonic() - start


def machine() -> dict[str, Any]:
    from impasto.devices import machine_facts

    return machine_facts()


# --- memory -------------------------------------------------------------------------------------
def float_tiffs(folder: Path, n: int, side: int = 5000) -> list[bytes]:
    """``n`` float TIFFs of side x side pixels: flat with a regular dot pattern, so deflate
    packs them to about 170 kB each."""
    files = []
    for i in range(n):
        pixels = np.full((side, side), 0.1 * (i + 1), np.float32)
        pixels[:: 7 + i, ::3] = 0.9
        path = folder / f"float-{i}.tif"
        Image.fromarray(pixels, "F").save(path, compression="tiff_adobe_deflate")
        files.append(path.read_bytes())
    return files


def post_job(url: str, images: list[bytes], settings: dict[str, Any]) -> tuple[int, float, str]:
    files = [("content", ("content.tif", images[0], "image/tiff"))]
    files += [("styles", (f"style{i}.tif", b, "image/tiff")) for i, b in enumerate(images[1:])]
    start = time.monotonic()
    r = httpx.post(
        url + "/api/jobs", files=files, data={"settings": json.dumps(settings)}, timeout=600
    )
    return r.status_code, time.monotonic() - start, r.json().get("detail") or r.json()["id"]


def load(server: Server, images: list[bytes], settings: dict[str, Any]) -> dict[str, Any]:
    """8 concurrent submissions of ``images``; a prober asks for the settings meanwhile."""
    before, server.peak = server.rss(), server.rss()
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            start = time.monotonic()
            httpx.get(server.url + "/api/settings", timeout=120).raise_for_status()
            latencies.append(time.monotonic() - start)
            time.sleep(0.25)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_job(server.url, images, settings), range(8)))
    ids = [text for status, _, text in answers if status == 201]
    for job_id in ids:  # accepted jobs run on the server's worker: wait for them too
        while httpx.get(f"{server.url}/api/jobs/{job_id}").json()["state"] in ("queued", "running"):
            time.sleep(0.5)
    seconds = time.monotonic() - start
    done.set()
    prober.join(130)
    time.sleep(1.0)
    return {
        "requests": 8,
        "images_per_request": len(images),
        "statuses": dict(Counter(str(status) for status, _, _ in answers)),
        "answer": next((t for s, _, t in answers if s != 201), None),
        "slowest_answer_s": round(max(t for _, t, _ in answers), 2),
        "all_done_s": round(seconds, 1),
        "rss_before_mb": round(before / 2**20),
        "rss_peak_mb": round(server.peak / 2**20),
        "growth_mb": round((server.peak - before) / 2**20),
        "rss_after_mb": round(server.rss() / 2**20),
        "settings_probes": len(latencies),
        "settings_slowest_s": round(max(latencies), 3) if latencies else None,
    }


def memory(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="impasto-web-memory-"))
    tiffs = float_tiffs(folder, 5)
    settings = {"size": 64, "iterations": 1}
    runs = {}
    server = Server(folder / "work")
    try:
        runs["five_tiffs"] = load(server, tiffs, settings)
        runs["two_tiffs"] = load(server, tiffs[:2], settings)
    finally:
        runs["sigterm_exit_s"] = round(server.stop(), 2)
    if args.compare:
        lifted = Server(folder / "lifted", "--max-decodes", "8", "--max-request-megapixels", "125")
        try:
            runs["five_tiffs_without_limits"] = load(lifted, tiffs, settings)
        finally:
            lifted.stop()
    return {
        "what": "8 concurrent POST /api/jobs of 25-megapixel float TIFFs to impasto serve",
        "tiff_bytes": [len(t) for t in tiffs],
        "machine": machine(),
        "runs": runs,
    }


# --- fuzzing ------------------------------------------------------------------------------------
def fuzz(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="impasto-web-fuzz-"))
    limits = ["--max-size", "64", "--max-iterations", "5", "--max-queue", "4"]
    limits += ["--keep-jobs", "4", "--max-upload-mb", "1", "--preview-seconds", "0.2"]
    server = Server(folder / "work", *limits)
    har = folder / "fuzz.har"
    command = [
        "schemathesis", "run", f"{server.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", str(args.examples),
        "--max-time", str(args.max_time),
        "--seed", "0",
        "--workers", "1",
        "--request-timeout", "60",
        "--continue-on-failure",
        "--report", "har", "--report-har-path", str(har),
        "--no-color",
    ]  # fmt: skip
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=args.max_time + 600)
    seconds = time.monotonic() - start
    exit_seconds = server.stop()
    entries = json.loads(har.read_text())["log"]["entries"] if har.is_file() else []
    statuses = Counter(e["response"]["status"] for e in entries)
    log = server.log.read_text()
    return {
        "what": "schemathesis run against impasto serve on 127.0.0.1 (all phases)",
        "command": " ".join([*command[:2], "URL/openapi.json", *command[3:-3]]),
        "server_limits": " ".join(limits),
        "machine": machine(),
        "requests": len(entries),
        "server_errors_5xx": sum(n for status, n in statuses.items() if status >= 500),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(seconds),
        "schemathesis_exit_code": run.returncode,
        "schemathesis_summary": run.stdout.strip().splitlines()[-12:],
        "tracebacks_in_server_log": log.count("Traceback"),
        "sigterm_exit_s": round(exit_seconds, 2),
    }


# --- report -------------------------------------------------------------------------------------
def markdown(name: str, report: dict[str, Any]) -> str:
    lines = [f"# web server: {name}", "", report["what"], "", "```json"]
    lines += [json.dumps(report, indent=2), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory", help="concurrent uploads of huge float TIFFs")
    m.add_argument("--compare", action="store_true", help="also run without the limits")
    f = sub.add_parser("fuzz", help="schemathesis' generated requests")
    f.add_argument("--examples", type=int, default=100, help="examples per operation")
    f.add_argument("--max-time", type=int, default=900, help="seconds at most")
    for command in (m, f):
        command.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    report = memory(args) if args.what == "memory" else fuzz(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"web-{args.what}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"web-{args.what}.md").write_text(markdown(args.what, report))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
