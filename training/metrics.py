"""Training metrics per log interval, as torchtitan's MetricsProcessor.

Reported: loss, grad norm, LR, real (non-pad) tokens/s of the whole job (`tokens_per_s`, the token and
FLOP counts summed over ranks with one all-reduce per log interval) and per device, TFLOPS per device,
MFU (None when the device's peak is unknown, never a guess), peak memory, data-loading share, step time.
FLOPs are those a step computes: the trainer passes each step's count (matmuls per real token plus
attention over the documents actually attended, `training.model.attention_flops`). Values go to every sink:
TensorBoard, a `metrics.jsonl` file, and any callable (the Ray job plugs in `ray.util.metrics` gauges;
this module never imports Ray).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# Dense bf16 peak FLOP/s per device (vendor spec sheets, without sparsity).
PEAK_FLOPS: dict[str, float] = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "L4": 121e12,
}

Sink = Callable[[int, dict[str, float]], None]


def device_peak_flops(device: torch.device) -> float | None:
    """bf16 peak of a known CUDA device, else None (CPU, unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_FLOPS.items():  # most specific names first
        if key in name:
            return peak
    return None


class TensorBoardSink:
    def __init__(self, log_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def __call__(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            # an unknown value (MFU on a CPU) is written as NaN, so every run has the same tags
            self.writer.add_scalar(key, float("nan") if value is None else value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class JsonlSink:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: int, values: dict[str, float]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")


class MetricsProcessor:
    """Accumulates per-step counters and emits averages every `log_interval` steps.

    `step` is called on every rank with that rank's counts; on log steps the counts are summed over the
    ranks (a collective: every rank logs at the same steps), so every rank reports the job's numbers.
    """

    def __init__(self, device: torch.device, flops_per_token: float, log_interval: int = 10,
                 sinks: list[Sink] | None = None, world_size: int = 1):
        self.device = device
        self.flops_per_token = flops_per_token
        self.log_interval = log_interval
        self.sinks = list(sinks or [])
        self.world_size = world_size
        self.peak_flops = device_peak_flops(device)
        self.last: dict[str, float] = {}
        self.start_window()
        logger.info("device %s, bf16 peak %s TFLOPS, %.3g training FLOPs per token", device,
                    "unknown" if self.peak_flops is None else f"{self.peak_flops / 1e12:.0f}", flops_per_token)

    def start_window(self) -> None:
        """Start a new averaging window (at the start of training and after each logged step)."""
        self.steps = 0
        self.real_tokens = 0
        self.flops = 0.0
        self.data_seconds = 0.0
        self.started = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def leave_out(self, seconds: float) -> None:
        """Leave `seconds` of non-training work (a checkpoint save) out of the current window's throughput."""
        self.started += seconds

    def add_data_time(self, seconds: float) -> None:
        self.data_seconds += seconds

    def should_log(self, step: int) -> bool:
        return step % self.log_interval == 0

    def step(self, step: int, loss: float, grad_norm: float, lr: float, real_tokens: int, batch_size: int,
             force: bool = False, flops: float | None = None) -> dict[str, float] | None:
        """Count one step (real tokens and model FLOPs on this rank; FLOPs default to real tokens x
        `flops_per_token`); every log interval, emit and return the values."""
        self.steps += 1
        self.real_tokens += real_tokens
        self.flops += real_tokens * self.flops_per_token if flops is None else flops
        if not (force or self.should_log(step)):
            return None
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        tokens, flops_total = self._job_totals()
        tps = tokens / elapsed
        tflops = flops_total / self.world_size / elapsed / 1e12  # per device
        values: dict[str, float] = {
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": lr,
            "batch_size": batch_size,
            "real_tokens": tokens,
            "tokens_per_s": tps,
            "tokens_per_s_per_device": tps / self.world_size,
            "tflops": tflops,
            "mfu": None if self.peak_flops is None else 100.0 * tflops * 1e12 / self.peak_flops,
            "step_time_s": elapsed / self.steps,
            "data_share": self.data_seconds / elapsed,
            "peak_memory_gib": self._peak_memory_gib(),
        }
        self.last = values
        for sink in self.sinks:
            sink(step, values)
        self.start_window()
        return values

    def _job_totals(self) -> tuple[int, float]:
        """Real tokens and FLOPs of this window summed over the ranks (one all-reduce; none alone)."""
        if self.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return self.real_tokens, self.flops
        totals = torch.tensor([float(self.real_tokens), self.flops], dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return int(totals[0].item()), float(totals[1].item())

    def _peak_memory_gib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        try:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        except ImportError:  # pragma: no cover - non-Unix
            return 0.0

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close:
                close()


def format_metrics(values: dict[str, Any]) -> str:
    """One log line: loss, LR, tokens/s, MFU."""
    mfu = values.get("mfu")
    return (f"loss {values['loss']:.4f}  lr {values['lr']:.2e}  gnorm {values['grad_norm']:.3f}  "
            f"{values['tokens_per_s']:,.0f} tok/s  mfu {'n/a' if mfu is None else f'{mfu:.1f}%'}  "
            f"data {100 * values['data_share']:.0f}%")
