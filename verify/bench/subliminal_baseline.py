"""One-run-per-call baseline of the split-head subliminal protocol.

Our own straightforward implementation, written the way the reference code
(Priesemann-Group/subliminal_learning @ 7374bf2, ``src/subliminal_core.py``)
does it, so that ``limen bench subliminal`` can time the batched engine against
it in the same process:

* a ``torch.utils.data.DataLoader`` over a ``TensorDataset`` (CPU tensors,
  shuffled with a seeded generator, batch 1024, ``pin_memory`` on CUDA), each
  batch copied to the device;
* one ``nn.Module`` split-head MLP at a time (Linear+ReLU hidden layers, a
  ``class_head`` with K logits and an ``aux_head`` with m logits on the last
  hidden layer), PyTorch-default initialisation, per-layer trainable flags as
  ``requires_grad``; the run is described by the engine's ``RunConfig``, so both
  sides of the benchmark run the same protocol;
* initialisation sources as in the reference (its section 1.3): every model is
  built under ``derived_seed(seed, role, "model_random_init")``, then each layer
  whose source is ``A`` is re-initialised with ``reset_parameters()`` under a
  forked RNG seeded with ``derived_seed(seed, "init_source", "A", layer)``, so
  teacher and student ``A`` layers are bit-identical;
* the teacher retrained for every run: Adam 1e-3, cross-entropy on the class
  logits, 5 epochs;
* the student distilled on fresh U[-1, 1] noise drawn from the global device RNG
  every step: Adam 1e-3, MSE between the aux logits, 5 epochs x 60 steps x 1000;
* ``loss.item()`` every step (the reference logs every step), test evaluations
  of teacher and student before and after training, and aux MSE on 10 x 1000
  held-out noise samples before and after distillation.

The reference's per-sample PIL transforms are *not* reproduced (the data are
preloaded tensors), which makes this baseline faster than the reference itself.
Its numbers are the reference's: on Fashion-MNIST on an H200, seeds 0 and 1 gave
teacher 0.0997 -> 0.8725 / 0.1273 -> 0.8745 and student 0.8058 / 0.7709 test
accuracy, the reference code's own runs to all four digits.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..subliminal.config import RunConfig, derived_seed  # derived_seed: the reference's seed derivation


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)  # seeds CPU and every CUDA device


class SplitHeadMLP(nn.Module):
    """Flatten -> (Linear, ReLU) x L -> {class_head: K logits, aux_head: m logits}."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], n_classes: int, m: int):
        super().__init__()
        dims = (in_dim, *hidden)
        self.hidden_names = [f"fc{i + 1}" for i in range(len(hidden))]
        for name, (a, b) in zip(self.hidden_names, zip(dims[:-1], dims[1:])):
            setattr(self, name, nn.Linear(a, b))
        self.class_head = nn.Linear(dims[-1], n_classes)
        self.aux_head = nn.Linear(dims[-1], m)

    def forward_split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.flatten(1)
        for name in self.hidden_names:
            h = F.relu(getattr(self, name)(h))
        return self.class_head(h), self.aux_head(h)


def _check_supported(cfg: RunConfig, dataset) -> None:
    unsupported = [what for what, bad in (
        ("a CNN", "cnn" in (cfg.arch, cfg.student_arch)), (f"{cfg.noise} noise", cfg.noise != "uniform"),
        ("noise normalisation", cfg.normalize_noise), ("a fixed noise pool", cfg.noise_pool is not None),
        ("perturbations", bool(cfg.perturb))) if bad]
    if unsupported:
        raise ValueError(f"the baseline implements the default MLP protocol only, not {', '.join(unsupported)}")
    if cfg.data != dataset.name or (cfg.n_classes or dataset.base_n_classes) != dataset.n_classes:
        raise ValueError(f"config wants {cfg.data} with {cfg.n_classes or 'all'} classes, "
                         f"dataset is {dataset.name} with {dataset.n_classes}")


def _build(role: str, cfg: RunConfig, in_dim: int, n_classes: int) -> SplitHeadMLP:
    set_seed(derived_seed(cfg.seed, role, "model_random_init"))
    model = SplitHeadMLP(in_dim, cfg.arch_of(role)[1], n_classes, cfg.m)
    for name, source in cfg.sources(role).items():
        if source != "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derived_seed(cfg.seed, "init_source", source, name))
                getattr(model, name).reset_parameters()
    for name, flag in cfg.trainable_flags(role).items():
        getattr(model, name).requires_grad_(flag)
    return model


@torch.no_grad()
def _evaluate(model: SplitHeadMLP, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits, _ = model.forward_split(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += y.numel()
    return correct / n, loss / n


@torch.no_grad()
def _aux_mse(student: SplitHeadMLP, teacher: SplitHeadMLP, shape, cfg: RunConfig, device: torch.device) -> float:
    student.eval()
    gen = torch.Generator(device=device)
    gen.manual_seed(derived_seed(cfg.seed, "eval_noise"))
    total = 0.0
    for _ in range(cfg.eval_noise_batches):
        noise = torch.rand((cfg.eval_noise_batch, *shape), generator=gen, device=device) * 2 - 1
        total += F.mse_loss(student.forward_split(noise)[1], teacher.forward_split(noise)[1]).item()
    return total / cfg.eval_noise_batches


def run_baseline(dataset, cfg: RunConfig, device: str | torch.device = "cpu", log_every_step: bool = True) -> dict:
    """Train one teacher and distil one student of ``cfg``; return their accuracies and timings.

    ``cfg`` is the engine's :class:`~limen.verify.subliminal.RunConfig` (MLP, uniform fresh noise,
    no perturbations; anything else raises ``ValueError``). ``dataset`` is the loaded
    :class:`limen.verify.data.Dataset` of ``cfg.data``; its tensors are moved to the CPU to stand
    in for the reference's host-side data pipeline.
    """
    _check_supported(cfg, dataset)
    device, seed = torch.device(device), cfg.seed
    t0 = time.perf_counter()
    x_train, y_train = dataset.x_train.cpu(), dataset.y_train.cpu()
    x_test, y_test = dataset.x_test.cpu(), dataset.y_test.cpu()
    pin = device.type == "cuda"
    shuffle_gen = torch.Generator().manual_seed(derived_seed(seed, "dataloader_shuffle"))
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=cfg.batch_size, shuffle=True,
                              generator=shuffle_gen, num_workers=0, pin_memory=pin)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=cfg.batch_size, shuffle=False,
                             num_workers=0, pin_memory=pin)
    shape = tuple(x_train.shape[1:])
    in_dim, k = int(x_train[0].numel()), int(dataset.n_classes)

    teacher = _build("teacher", cfg, in_dim, k).to(device)
    student = _build("student", cfg, in_dim, k).to(device)
    teacher_init_acc, _ = _evaluate(teacher, test_loader, device)
    student_init_acc, _ = _evaluate(student, test_loader, device)

    # teacher: cross-entropy on the class logits (the aux head gets no gradient)
    set_seed(derived_seed(seed, "teacher_training"))
    opt = torch.optim.Adam([p for p in teacher.parameters() if p.requires_grad], lr=cfg.teacher_lr)
    log = []
    for _ in range(cfg.teacher_epochs):
        teacher.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits, _ = teacher.forward_split(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if log_every_step:
                log.append(loss.item())
    teacher_acc, teacher_loss = _evaluate(teacher, test_loader, device)
    t_teacher = time.perf_counter() - t0

    # student: MSE on the aux logits against the frozen teacher, fresh uniform noise every step
    aux_init = _aux_mse(student, teacher, shape, cfg, device)
    teacher.eval()
    set_seed(derived_seed(seed, "student_training_noise"))
    opt = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=cfg.student_lr)
    for _ in range(cfg.student_epochs):
        student.train()
        for _ in range(cfg.noise_steps):
            noise = torch.rand((cfg.noise_batch, *shape), device=device) * 2 - 1
            with torch.no_grad():
                target = teacher.forward_split(noise)[1]
            loss = F.mse_loss(student.forward_split(noise)[1], target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if log_every_step:
                log.append(loss.item())
    student_acc, student_loss = _evaluate(student, test_loader, device)
    aux_final = _aux_mse(student, teacher, shape, cfg, device)
    wall = time.perf_counter() - t0
    return {
        "seed": seed, "teacher_init_acc": teacher_init_acc, "teacher_final_acc": teacher_acc,
        "teacher_final_class_loss": teacher_loss, "student_init_acc": student_init_acc,
        "student_final_acc": student_acc, "student_final_class_loss": student_loss,
        "student_init_aux_loss": aux_init, "student_final_aux_loss": aux_final,
        "seconds": wall, "teacher_seconds": t_teacher, "student_seconds": wall - t_teacher,
    }
