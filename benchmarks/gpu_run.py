"""The lent GPU's one prepared run: its steps in turn, each under a time limit, and one JSON summary.

Run through benchmarks/gpu_run.sh, which installs the carried wheels first and lists the settings
(environment variables). The steps, in this order:

  pytest   the CuPy kernels' parity tests, `pytest -m gpu`
  kernels  benchmarks/kernels.py: GB/s of each kernel, torch eager and torch.compile, and a device copy
  speed    benchmarks/gpu_speed.py: encode and decode fps per size, full budget and elastic, fp32 and bf16
  train    benchmarks/gpu_train.sh run: the training kit, for what the budget leaves (MINUTES at most)

Each step's status goes to $OUT/gpu.json: "ok", "failed (exit N): <its last line>", "timeout after
N s" or "skipped: <why>", with its figures. gpu.json is rewritten after every step, so a run cut
short keeps what it measured. Output goes to $OUT/gpu_run.log (training's to $OUT/train.log as
well), and each step's last lines to stdout. A failing step does not stop the others. Exit status:
0 when no step failed, 1 when one did, 2 when a prerequisite is missing (then no step runs).
"""

import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("pytest", "kernels", "speed", "train")
CAPS = {"pytest": 120, "kernels": 150, "speed": 150}  # seconds each step may take at most
MIN_TRAIN_S = 120  # training time the earlier steps leave, beside its start-up
NOT_SETTINGS = ("found", "work", "cuda")  # fields of Run that are found out, not set


@dataclass
class Run:
    """The settings (from the environment, named as gpu_run.sh lists them) and what is found out."""

    out: Path
    device: str
    budget_s: float
    steps: tuple[str, ...]
    minutes: float
    train_overhead_s: float
    sizes: list[str]
    frames: int
    repeat: int
    clip: Path
    data: Path
    kernel_size: str
    kernel_batch: int
    cache: Path
    started: float
    work: Path | None = None  # a scratch folder for the steps' JSON, made by main and removed after
    found: dict = field(default_factory=dict)  # module name -> version, or None where missing
    cuda: bool = False

    @classmethod
    def from_env(cls, env: dict) -> "Run":
        return cls(
            out=Path(env["OUT"]),
            device=env.get("DEVICE", "cuda"),
            budget_s=float(env.get("BUDGET", 575)),
            steps=tuple(env.get("STEPS", " ".join(STEPS)).split()),
            minutes=float(env.get("MINUTES", 6)),
            train_overhead_s=float(env.get("TRAIN_OVERHEAD", 90)),
            sizes=env.get("SPEED_SIZES", "256 720p").split(),
            frames=int(env.get("SPEED_FRAMES", 128)),
            repeat=int(env.get("SPEED_REPEAT", 3)),
            clip=Path(env.get("SPEED_CLIP", ".gpu-data/videos/sam2_01_dog.mp4")),
            data=Path(env.get("DATA", ".gpu-data")),
            kernel_size=env.get("KERNEL_SIZE", "720p"),
            kernel_batch=int(env.get("KERNEL_BATCH", 8)),
            cache=Path(env.get("CACHE", "/tmp/vtok-cache")),
            started=float(env.get("GPU_RUN_START") or time.time()),
        )

    def left(self) -> float:
        """Seconds of the budget still to spend."""
        return self.budget_s - (time.time() - self.started)

    @property
    def log(self) -> Path:
        return self.out / "gpu_run.log"


def _version(module: str) -> str | None:
    try:
        m = importlib.import_module(module)
    except Exception:  # not only ImportError: a broken install counts as missing
        return None
    return str(getattr(m, "__version__", "present"))


def _device(run: Run) -> tuple[dict, list[str]]:
    """The device as torch and CuPy see it, and what stops the run there."""
    device, problems = {"asked": run.device, "name": platform.processor() or "cpu"}, []
    import torch

    run.cuda = run.device.startswith("cuda") and torch.cuda.is_available()
    if run.device.startswith("cuda") and not run.cuda:
        problems.append(f"DEVICE={run.device}, but CUDA is not available to torch")
    if run.cuda:
        props = torch.cuda.get_device_properties(run.device)
        device |= {"name": props.name, "capability": f"{props.major}.{props.minor}"}
        device |= {"memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    if run.cuda and run.found["cupy"]:
        try:
            import cupy

            device["cupy_cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        except Exception as e:  # CuPy imports but cannot reach the device: a note, not a stop
            run.found["cupy"] = None
            device["cupy_problem"] = f"{type(e).__name__}: {e}"[:300]
    return device, problems


def prerequisites(run: Run) -> tuple[dict, list[str]]:
    """(the device, the versions and carried wheels found, and notes on what some steps will lack;
    the problems that stop the run), checked before any step."""
    for module in ("torch", "numpy", "cupy", "zstandard", "safetensors", "typer", "pytest", "cv2", "av"):
        run.found[module] = _version(module)
    problems = [f"no {m}" for m in ("torch", "numpy", "zstandard") if run.found[m] is None]
    if run.found["zstandard"] is None:
        problems[-1] += ": run 'bash benchmarks/gpu_run.sh prepare' here and carry .whl"
    device, stops = _device(run) if run.found["torch"] else ({"asked": run.device}, [])
    notes = {
        "no CuPy: the kernels step is skipped and the parity tests fail": run.cuda and not run.found["cupy"],
        "no pytest, none carried: the parity tests are skipped": not run.found["pytest"],
        "neither OpenCV nor PyAV: no clip can be decoded": not (run.found["cv2"] or run.found["av"]),
        f"no training data in {run.data}: run prepare here and carry it": not (ROOT / run.data).is_dir(),
        f"no {run.clip}: the speed step codes a synthetic pattern": not (ROOT / run.clip).is_file(),
    }
    found = {"device": device, "versions": {"python": platform.python_version(), **run.found}}
    found |= {
        "wheels": sorted(p.name for p in (ROOT / ".whl").rglob("*.whl")),
        "notes": [n for n, on in notes.items() if on],
    }
    return found, problems + stops


def _tail(log: Path, offset: int, lines: int) -> list[str]:
    """The last `lines` non-empty lines written to `log` after `offset`."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _stop(proc: subprocess.Popen) -> None:
    """End the step's whole process group: first asked, then forced."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(run: Run, name: str, argv: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run one step's command with its output appended to the log; its status and seconds."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    start = time.perf_counter()
    with open(run.log, "a") as f:
        f.write(f"\n===== {name}: {' '.join(argv)} (limit {timeout:.0f} s)\n")
        f.flush()
        offset = f.tell()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, process_group=0)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            code = None
    tail = _tail(run.log, offset, 15)
    print(f"--- {name}", *tail, sep="\n", flush=True)
    if code is None:
        status = f"timeout after {timeout:.0f} s"
    elif code == 0:
        status = "ok"
    else:
        status = f"failed (exit {code}): {tail[-1][:300] if tail else 'no output'}"
    return {"status": status, "seconds": round(time.perf_counter() - start, 1)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def junit_counts(path: Path) -> dict | None:
    """Tests, passed, failed, errors and skipped from pytest's JUnit XML, and the failing tests' names."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts = {k: 0 for k in ("tests", "failures", "errors", "skipped")}
    for suite in root.iter("testsuite"):
        for k in counts:
            counts[k] += int(suite.get(k, 0))
    failing = [c.get("name") for c in root.iter("testcase") if any(c.find(t) is not None for t in ("failure", "error"))]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "passed": passed, "failing": failing}


def step_pytest(run: Run, timeout: float) -> dict:
    if not run.cuda:
        return {"status": "skipped: no CUDA"}
    if not run.found["pytest"]:
        return {"status": "skipped: no pytest there, and none carried (gpu_run.sh prepare carries its wheels)"}
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    xml = run.work / "pytest.xml"
    argv = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q", "-rfEs", f"--junitxml={xml}"]
    return run_step(run, "pytest", argv + files, timeout) | {"result": junit_counts(xml)}


def step_kernels(run: Run, timeout: float) -> dict:
    if not run.cuda:
        return {"status": "skipped: no CUDA"}
    if not run.found["cupy"]:
        return {"status": "skipped: no CuPy"}
    out = run.work / "kernels.json"
    argv = [sys.executable, "benchmarks/kernels.py", "--size", run.kernel_size, "--batch", str(run.kernel_batch)]
    return run_step(run, "kernels", argv + ["--out", str(out)], timeout) | {"result": _read_json(out)}


def step_speed(run: Run, timeout: float) -> dict:
    out = run.work / "speed.json"
    argv = [sys.executable, "benchmarks/gpu_speed.py", "--device", run.device, "--sizes", *run.sizes]
    argv += ["--frames", str(run.frames), "--repeat", str(run.repeat), "--cache", str(run.cache), "--out", str(out)]
    if (ROOT / run.clip).is_file():
        argv += ["--clip", str(run.clip)]
    return run_step(run, "speed", argv, timeout) | {"result": _read_json(out)}


def step_train(run: Run, timeout: float) -> dict:
    """The training kit, for MINUTES or what the budget leaves after its start-up, whichever is less."""
    minutes = round(min(run.minutes, (timeout - run.train_overhead_s) / 60), 2)
    if minutes <= 0:
        return {"status": f"skipped: no time left ({timeout:.0f} s)"}
    env = {"MINUTES": str(minutes), "OUT": str(run.out), "DEVICE": run.device, "CACHE": str(run.cache)}
    env["PYTHON"] = sys.executable
    result = run_step(run, "train", ["bash", "benchmarks/gpu_train.sh", "run"], timeout, env) | {"minutes": minutes}
    manifest = _read_json(run.out / "manifest.json") or {}
    entry = manifest.get("models", {}).get(os.environ.get("MODEL", "vtok-fsq"))
    if entry:
        done = entry["training"]
        result["result"] = {"steps": done["steps"], "seconds": done["seconds"], "metrics": entry["metrics"]}
        result["result"] |= {"steps_per_s": done["steps"] / max(done["seconds"], 1), "sha256": entry["sha256"]}
    return result


STEP_FUNCTIONS = {"pytest": step_pytest, "kernels": step_kernels, "speed": step_speed, "train": step_train}


def step_timeout(run: Run, name: str) -> float:
    """A step's limit: its cap, within the budget, leaving training its start-up and MIN_TRAIN_S when
    it is still to come."""
    if name == "train":
        return run.left() - 5
    later_train = "train" in run.steps[run.steps.index(name) + 1 :]
    reserve = run.train_overhead_s + MIN_TRAIN_S if later_train else 5
    return min(CAPS[name], run.left() - reserve)


def run_steps(run: Run, summary: dict) -> bool:
    """Run the chosen steps, rewriting gpu.json after each; True if none failed or timed out."""
    ok = True
    for name in STEPS:
        timeout = step_timeout(run, name) if name in run.steps else 0
        if name not in run.steps:
            summary["steps"][name] = {"status": "skipped: not in STEPS"}
        elif timeout < 10:
            summary["steps"][name] = {"status": f"skipped: no time left ({max(run.left(), 0):.0f} s)"}
        else:
            print(f"gpu_run: {name} (limit {timeout:.0f} s)", flush=True)
            summary["steps"][name] = STEP_FUNCTIONS[name](run, timeout)
        ok &= not summary["steps"][name]["status"].startswith(("failed", "timeout"))
        save(run, summary)
    return ok


def save(run: Run, summary: dict) -> None:
    from vtok.files import write_json

    summary["seconds"] = round(time.time() - run.started, 1)
    write_json(run.out / "gpu.json", summary)


def main() -> int:
    run = Run.from_env(os.environ)
    unknown = sorted(set(run.steps) - set(STEPS))
    if unknown:
        print(f"gpu_run: STEPS: unknown {', '.join(unknown)}; choose among {', '.join(STEPS)}", file=sys.stderr)
        return 2
    run.out.mkdir(parents=True, exist_ok=True)
    found, problems = prerequisites(run)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(run).items() if k not in NOT_SETTINGS}
    summary = {"started": datetime.fromtimestamp(run.started, timezone.utc).isoformat(timespec="seconds")}
    summary |= found | {"problems": problems, "settings": settings, "steps": {}}
    print(f"gpu_run: {found['device'].get('name')}; " + ", ".join(f"{k} {v}" for k, v in found["versions"].items()))
    for note in found["notes"]:
        print(f"gpu_run: note: {note}")
    if problems:
        for problem in problems:
            print(f"gpu_run: {problem}", file=sys.stderr)
        summary["steps"] = {name: {"status": "skipped: prerequisites missing"} for name in STEPS}
        save(run, summary)
        return 2
    run.work = Path(tempfile.mkdtemp(prefix="vtok-gpu-run-"))
    try:
        ok = run_steps(run, summary)
    finally:
        shutil.rmtree(run.work, ignore_errors=True)
    print("| step | status | seconds |\n|---|---|---|")
    for name, step in summary["steps"].items():
        print(f"| {name} | {step['status']} | {step.get('seconds', '')} |")
    print(f"gpu_run: {summary['seconds']} s; figures in {run.out / 'gpu.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
