"""``restoray bench train``: what the training loop costs beside the model, one record per case.

Each case times one training step two ways on the same process, device and thread count:

* **restoray**: :class:`trainers.loop.Recipe` exactly as a Ray Train worker runs it
  (``setup`` then ``train``), minus Ray: in-memory batches, networks moved to the device
  instead of wrapped by ``prepare_model``, a no-op ``report`` and no validation rows. Its
  step is the family's ``device_stage`` + ``train_step`` + schedulers + EMA + loss
  bookkeeping + the log / validate / checkpoint cadence of the zoo config (log every 100,
  validate and checkpoint every 5000).
* **plain**: a hand-written PyTorch loop (:func:`_plain_train`): the same networks built the
  same way under the same seed, Adam with the config's settings, the zoo's multistep
  schedule, the same loss functions (``trainers.losses``: the comparison is of loops, not of
  loss code), a ``.item()`` log every 100 steps like any plain loop, no Ray Data.

Both receive the same uint8 channels-last batch, already in memory (on the device, as Ray
Data's ``iter_torch_batches(device=...)`` hands it), and both convert it to float NCHW inside
the step with the same expression: ``movedim`` keeps the tensor's channels-last strides, and
convolutions follow those strides, so a different conversion would time a different
convolution layout rather than the loop. Neither config keeps an EMA, so neither loop has one.

Timing: both loops pull their batches from a :class:`_Clock` that stamps every hand-out; a
step is the time between two consecutive hand-outs (everything the loop does between them).
The first ``warmup`` steps (allocator, oneDNN / cuDNN plans) and the last step (Recipe
validates and saves a checkpoint there, and nothing stamps its end) are left out, as is all
set-up. On the CPU a repetition's figure is its median step: on a shared machine a step that
loses its core to another process takes 2-4x as long, and the window's mean moved by +-5%
from run to run with it. The median is the steady-state step, per-step bookkeeping included
(loss sums, schedulers, EMA); what runs every 100 or 5000 steps (a log line,
validation, checkpoints) is not in it. On CUDA single steps mean nothing (the host runs ahead
of the GPU until something syncs), so the figure is the window's mean, with the clock
synchronising at the window's two edges only: a per-step host sync in either loop is paid
inside the window, where it belongs. Repetitions are interleaved in pairs, alternating which
loop goes first (restoray-plain, plain-restoray, ...); each loop's figure is its median over
repetitions, and ``value`` is the median of the pairs' restoray/plain ratios, which a load that
drifts over minutes moves less than the ratio of two medians does (target: <= 1.05).

Sizes: on the CPU (one thread, see :func:`bench_train`) the zoo networks shrink so a step
takes ~0.08 s (EDSR: 32 channels, 4 blocks, batch 4 of GT 96 / LQ 24) and ~0.4 s (ESRGAN:
RRDBNet 32 channels / growth 16 / 2 blocks, ModifiedVGG 16 channels, the perceptual loss on
VGG19 conv1_2 instead of conv5_4, batch 2 of GT 128 / LQ 32), see :data:`CPU_SIZES`. CUDA
runs the zoo configs as they are (batch 16). The VGG weights are random everywhere: no
file is needed to time them.
Records: ``{"case", "device", "value", "unit", "restoray_s_per_step", "plain_s_per_step",
"steps", "reps"}``, ``steps`` being the measured steps of one repetition.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from pipelines.bench import save_records
from pipelines.config import load_experiment
from trainers.archs import build_arch
from trainers.losses import pixel_loss, ragan_generator_loss
from trainers.loop import Recipe, RunContext
from trainers.tasks import get_task

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CASE_CONFIGS = {
    "edsr": CONFIGS / "sr" / "edsr_x4c64b16_1x16_300k_div2k.yaml",
    "esrgan": CONFIGS / "sr_gan" / "esrgan_x4c64b23g32_1x16_400k_div2k.yaml",
}
# No VGG file exists on a bench machine: random VGG weights time the same as torchvision's.
_VGG_RANDOM = ["task.perceptual.allow_random_init=true", "task.perceptual.vgg_weights=null"]
# Overrides per case. The zoo's patches: EDSR GT 196 / LQ 49, ESRGAN GT 128 / LQ 32 (x4; the
# ModifiedVGG discriminator only judges 128 px, so ESRGAN keeps its patch everywhere).
ZOO_SIZES = {
    "edsr": [],
    "esrgan": [*_VGG_RANDOM],
}
CPU_SIZES = {
    "edsr": ["data.batch_size=4", "task.data.gt_size=96", "nets.generator.mid_channels=32",
             "nets.generator.num_blocks=4"],
    "esrgan": ["data.batch_size=2", "nets.generator.mid_channels=32", "nets.generator.growth_channels=16",
               "nets.generator.num_blocks=2", "nets.discriminator.mid_channels=16",
               'task.perceptual.layer_weights={"2": 1.0}', *_VGG_RANDOM],
}
QUICK_SIZES = {  # the smoke test: tiny networks, figures meaningless
    "edsr": ["data.batch_size=2", "task.data.gt_size=32", "nets.generator.mid_channels=8",
             "nets.generator.num_blocks=1"],
    "esrgan": ["data.batch_size=1", "nets.generator.mid_channels=8", "nets.generator.growth_channels=4",
               "nets.generator.num_blocks=1", "nets.discriminator.mid_channels=4",
               'task.perceptual.layer_weights={"0": 1.0}', *_VGG_RANDOM],
}
# (steps per run, warm-up steps, repetitions per loop)
SCHEDULE = {"quick": (4, 1, 1), "edsr": (45, 3, 9), "esrgan": (16, 2, 5)}
UNIT = "restoray/plain time per step"


def case_config(case: str, device: str, quick: bool, steps: int):
    """The zoo config of ``case`` at bench sizes, ``steps`` long, with the zoo's log / validate /
    checkpoint cadence (the configs say 100 / 5000 / 5000)."""
    overrides = (QUICK_SIZES if quick else ZOO_SIZES if device == "cuda" else CPU_SIZES)[case]
    return load_experiment(CASE_CONFIGS[case], [*overrides, f"train.total_steps={steps}"], check_paths=False)


def make_batch(cfg, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """One stream batch as Ray Data hands it to a worker: uint8 ``[B,h,w,3]`` / ``[B,H,W,3]``."""
    g = torch.Generator().manual_seed(seed)
    b, gt = cfg.data.batch_size, cfg.task.data.gt_size
    lq = gt // cfg.task.data.scale
    return {"lq": torch.randint(0, 256, (b, lq, lq, 3), dtype=torch.uint8, generator=g).to(device),
            "gt": torch.randint(0, 256, (b, gt, gt, 3), dtype=torch.uint8, generator=g).to(device)}


class _Clock:
    """Hands out the same batch ``steps`` times and stamps each hand-out (see the module doc)."""

    def __init__(self, batch: dict[str, torch.Tensor], steps: int, warmup: int, device: torch.device):
        if steps - 1 - warmup < 1:
            raise ValueError(f"{steps} steps leave nothing to measure after {warmup} warm-up steps")
        self.batch, self.steps, self.warmup, self.device = batch, steps, warmup, device
        self.stamps: list[float] = []

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if len(self.stamps) == self.steps:
            raise StopIteration
        if self.device.type == "cuda" and len(self.stamps) in (self.warmup, self.steps - 1):
            torch.cuda.synchronize(self.device)
        self.stamps.append(time.perf_counter())
        return self.batch

    @property
    def measured(self) -> int:
        return self.steps - 1 - self.warmup

    def seconds_per_step(self) -> float:
        """The median step on the CPU, the window's mean on CUDA (see the module doc)."""
        if len(self.stamps) != self.steps:
            raise RuntimeError(f"the loop took {len(self.stamps)} of {self.steps} batches")
        if self.device.type == "cuda":
            return (self.stamps[-1] - self.stamps[self.warmup]) / self.measured
        window = self.stamps[self.warmup:]
        return statistics.median(b - a for a, b in zip(window, window[1:]))


def _restoray_train(cfg, clock: _Clock, device: torch.device) -> None:
    recipe = Recipe(cfg, RunContext(), device=device, report=lambda metrics, checkpoint=None: None,
                    val_rows=lambda: [])
    recipe.setup(None, batches=clock, wrap=lambda net: net.to(device))
    recipe.train()


def _to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``[B,H,W,C]`` -> float ``[B,C,H,W]`` in [0, 1], strides as ``to_batch`` leaves them."""
    return images.to(device).movedim(-1, -3).float().div_(255.0)


def _plain_train(cfg, clock: _Clock, device: torch.device) -> None:
    """The comparison loop: what one would write by hand for this config in plain PyTorch."""
    torch.manual_seed(cfg.seed)  # then the task's modules, then the networks: Recipe's order
    losses = get_task(cfg.task.name)(cfg.task)  # only its loss modules (perceptual, GAN)
    nets = {role: build_arch(spec["name"], **{k: v for k, v in spec.items() if k != "name"}).to(device).train()
            for role, spec in cfg.nets.items()}
    opts, scheds = {}, {}
    for role, net in nets.items():
        o, s = cfg.optim[role], cfg.schedule[role]
        opts[role] = torch.optim.Adam(net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        scheds[role] = torch.optim.lr_scheduler.MultiStepLR(opts[role], s.milestones, s.gamma)
    if cfg.task.name == "sr_gan":
        losses.perceptual.to(device)
    for step, raw in enumerate(clock):
        lq, gt = _to_float(raw["lq"], device), _to_float(raw["gt"], device)
        if cfg.task.name == "sr":
            loss = _plain_sr_step(cfg.task, nets["generator"], opts["generator"], lq, gt)
        else:
            loss = _plain_esrgan_step(cfg.task, losses, nets, opts, lq, gt)
        for sched in scheds.values():
            sched.step()
        if (step + 1) % cfg.train.log_every == 0:
            print(f"[plain] step {step + 1} loss {loss.item():.4g}", flush=True)


def _plain_sr_step(task_cfg, g, opt, lq, gt) -> torch.Tensor:
    loss = task_cfg.pixel.weight * pixel_loss(task_cfg.pixel.name, g(lq), gt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def _plain_esrgan_step(task_cfg, losses, nets, opts, lq, gt) -> torch.Tensor:
    """ESRGAN as mmedit 0.16 steps it: G on pixel + perceptual + relativistic GAN with D frozen,
    then D on its real term and its fake term, two backward passes, one step."""
    g, d, gan = nets["generator"], nets["discriminator"], losses.gan_loss
    fake = g(lq)
    d.requires_grad_(False)
    loss_pix = task_cfg.pixel.weight * pixel_loss(task_cfg.pixel.name, fake, gt)
    loss_percep = losses.perceptual(fake, gt)[0]
    d_fake = d(fake)
    loss_g = loss_pix + loss_percep + ragan_generator_loss(gan, d(gt).detach(), d_fake)
    opts["generator"].zero_grad(set_to_none=True)
    loss_g.backward()
    opts["generator"].step()
    d.requires_grad_(True)

    fake = fake.detach()
    opts["discriminator"].zero_grad(set_to_none=True)
    with torch.no_grad():
        mean_fake = d(fake).mean()
    d_real = d(gt)
    (gan(d_real - mean_fake, target_is_real=True, is_disc=True) * 0.5).backward()
    (gan(d(fake) - d_real.detach().mean(), target_is_real=False, is_disc=True) * 0.5).backward()
    opts["discriminator"].step()
    return loss_g.detach()


def bench_case(case: str, device: torch.device, quick: bool = False) -> dict[str, Any]:
    """Interleaved repetitions of both loops on one case: each loop's median, and the median of
    the repetitions' ratios."""
    steps, warmup, reps = SCHEDULE["quick" if quick else case]
    cfg = case_config(case, device.type, quick, steps)
    if cfg.task.name == "sr_gan" and not (cfg.task.gan.relativistic and cfg.task.disc_steps == 1
                                          and cfg.task.disc_init_steps == 0 and not cfg.task.sharpened_gt_in):
        raise ValueError(f"{case}: the plain loop is written for ESRGAN's step (relativistic, D every step)")
    batch = make_batch(cfg, device)
    loops = {"restoray": _restoray_train, "plain": _plain_train}
    times: dict[str, list[float]] = {"restoray": [], "plain": []}
    for rep in range(reps):
        for name in sorted(loops, reverse=rep % 2 == 0):  # restoray first, then plain first, ...
            clock = _Clock(batch, steps, warmup, device)
            loops[name](cfg, clock, device)
            times[name].append(clock.seconds_per_step())
    ratio = statistics.median(r / p for r, p in zip(times["restoray"], times["plain"]))
    return {"case": case, "device": device.type, "value": round(ratio, 4), "unit": UNIT,
            "restoray_s_per_step": round(statistics.median(times["restoray"]), 6),
            "plain_s_per_step": round(statistics.median(times["plain"]), 6),
            "steps": steps - 1 - warmup, "reps": reps}


def bench_train(quick: bool = False, threads: int = 1) -> list[dict[str, Any]]:
    """Every case on the CPU, and on CUDA where there is one, with ``threads`` torch threads.

    One thread by default, so CPU figures are per core as ``restoray bench degradations``'
    are: a multi-threaded op waits at every barrier for its slowest thread, and on a shared
    machine one thread that loses its core to another process makes each op many times
    slower (BatchNorm on 32k values went from 0.1 ms to 20 ms), drowning what is measured.
    """
    torch.set_num_threads(threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    records = []
    for device in devices:
        for case in CASE_CONFIGS:
            records.append(bench_case(case, device, quick))
            r = records[-1]
            print(f"[restoray] bench train {case} {device.type}: restoray {r['restoray_s_per_step']:.4f} s/step, "
                  f"plain {r['plain_s_per_step']:.4f} s/step, ratio {r['value']:.3f}", flush=True)
    return records


def format_table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'case':<8} {'device':<6} {'restoray s/step':>16} {'plain s/step':>13} {'ratio':>7} {'steps x reps':>13}"]
    for r in records:
        lines.append(f"{r['case']:<8} {r['device']:<6} {r['restoray_s_per_step']:>16.4f} {r['plain_s_per_step']:>13.4f} "
                     f"{r['value']:>7.3f} {r['steps']:>6} x {r['reps']:<4}")
    return "\n".join(lines)


def write_bench_train(out: str, quick: bool = False) -> list[dict[str, Any]]:
    return save_records(out, bench_train(quick=quick))
