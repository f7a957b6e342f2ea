"""Many scans through one model: read ahead, batch the inference, answer in input order.

The offline laptop's daily job is a folder of scans. One scan at a time, each timed with
repeated passes, leaves the cores idle while a file is decoded and runs the model several
times per scan. Here a reader thread reads and preprocesses the next files
(:func:`hscc_mri.inference.read_scan_input`) while the model runs, and the model takes
the inputs read so far as one batch (up to ``batch_size``): every compiled runtime here
takes a dynamic batch (the ONNX export's batch axis is dynamic, and OpenVINO and ONNX
Runtime keep it), and a batch amortises the per-call overhead and feeds both cores.

Results come back as a generator, one dict per file, **in input order**, each as soon as
it is known: the model takes whatever has been read when it is free (at least one
input, never waiting for a full batch), so a slow source still yields line by line and a
fast one gives full batches. A file that cannot be read gives ``{file, error}`` in its
place and the run goes on.

With a safety net (:class:`Fallback`: the uncompressed reference and the release's
threshold, :mod:`hscc_mri.safety_net`), the scans of a batch whose compressed answer is
below the threshold run through the reference too (batched as well) and its answer is the
one returned; each line then says ``answered_by`` and the ``confidence`` compared.

Each classified line carries ``model_ms``: the model time spent on that scan, its share
of the batch call plus, when handed over, its share of the reference's call (a
throughput share, not a batch-1 latency).

Latency is measured only when asked (``repeats > 0``): then each scan is run alone, one
warm-up and ``repeats`` timed batch-1 passes, and ``latency_ms`` is their median (the
single-scan latency a user of the app sees). A batch's wall time divided by its size is
a throughput, not a scan's latency, so untimed results carry no ``latency_ms``.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .errors import SettingsError
from .inference import ScanInput, predict_tensor, read_scan_input, result_line

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_READERS", "Fallback", "ReadAhead", "predict_files"]

#: Most inputs per model call. Larger batches gain little on a CPU once both cores are
#: busy and delay the first lines; 16 inputs of 3 x 240 x 240 are 11 MB.
DEFAULT_BATCH_SIZE = 16
#: Reader threads. Reading and preprocessing a 512 x 512 JPEG takes ~5 ms against tens of
#: ms of inference per scan, so on 2 cores one reader keeps ahead without taking a core
#: from the model (measured in scripts/predict_throughput.py).
DEFAULT_READERS = 1


class ReadAhead:
    """Reads ``paths`` with ``read`` in ``workers`` daemon threads, at most ``depth`` files
    ahead of the consumer; :meth:`futures` gives one future per path, in order.

    Daemon threads and a bounded look-ahead: an interrupted run neither waits for the
    files still queued nor leaves a non-daemon thread that keeps the process alive.
    ``read`` must not raise (:func:`hscc_mri.inference.read_scan_input` turns every read
    error into the item's ``error``); if it does, the future carries the exception.
    """

    def __init__(self, paths: Sequence[str], read: Callable[[str], ScanInput], workers: int = DEFAULT_READERS,
                 depth: int = 2 * DEFAULT_BATCH_SIZE) -> None:
        if workers < 1 or depth < 1:
            raise SettingsError(f"workers and depth must be at least 1, got {workers} and {depth}")
        self._read = read
        self._futures: list[Future] = [Future() for _ in paths]
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        for item in zip(paths, self._futures):
            self._todo.put(item)
        self._room = threading.Semaphore(depth)  # one slot per read result not yet taken
        self._stop = threading.Event()
        self._workers = workers
        for i in range(workers):
            threading.Thread(target=self._work, name=f"scan-reader-{i}", daemon=True).start()

    def _work(self) -> None:
        while True:
            self._room.acquire()
            if self._stop.is_set():
                return
            try:
                path, future = self._todo.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._read(path))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, who decides
                future.set_exception(e)

    def futures(self) -> Iterator[Future]:
        """The futures in input order; taking one frees room for the readers to read on."""
        for future in self._futures:
            yield future
            self._room.release()

    def close(self) -> None:
        """Stop reading: queued files are cancelled, the readers exit after their current file."""
        self._stop.set()
        for future in self._futures:
            future.cancel()
        for _ in range(self._workers):
            self._room.release()


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # A PyTorch model prepared by optimize_for_inference has channels-last weights; hand
    # it the batch in that layout as the timers do (compiled models take any layout).
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    if weight is not None and not weight.is_contiguous():
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return torch.softmax(model(x).float(), dim=1)


class _Batcher:
    """Runs batches through ``model``; per item when the model refuses a batch."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.batched = True

    def probabilities(self, xs: list[torch.Tensor]) -> list[list[float]]:
        if self.batched and len(xs) > 1:
            try:
                return _forward(self.model, torch.stack(xs)).tolist()
            except (RuntimeError, ValueError):
                # A graph exported or compiled with a fixed batch of 1 (not ours: every
                # runtime here keeps the export's dynamic batch axis) refuses N > 1; run
                # such a model one input at a time from here on. A real failure of the
                # model fails again below, on one input, and propagates.
                self.batched = False
        return [_forward(self.model, x.unsqueeze(0))[0].tolist() for x in xs]


@dataclass
class Fallback:
    """The safety net of a compressed model: its uncertain scans go to ``reference``.

    Attributes:
        reference: the uncompressed model (same input contract), compiled like the other.
        net: the rule (:class:`hscc_mri.safety_net.SafetyNet`: ``hand_over``, ``confidence``,
            ``measure``, ``threshold``).
    """

    reference: nn.Module
    net: Any


def predict_files(model: nn.Module, files: Sequence[str], slice_index: int | None = None,
                  series: int | str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                  readers: int = DEFAULT_READERS, repeats: int = 0,
                  fallback: Fallback | None = None) -> Iterator[dict[str, Any]]:
    """Classify ``files`` with ``model``, yielding one result dict per file in input order,
    each as soon as it is known.

    Args:
        model: a PyTorch or compiled model with ``spec`` (:func:`hscc_mri.deploy.deploy`).
        files: scan files, or folders/``.zip`` files of one DICOM series each.
        slice_index, series: as for :func:`hscc_mri.inference.read_scan_input`.
        batch_size: most inputs per model call (1: one at a time).
        readers: reader threads (0: read in the calling thread, nothing ahead).
        repeats: 0 for no timing; else each scan runs alone, one warm-up and ``repeats``
            timed batch-1 passes, and its line has ``latency_ms`` (their median; the
            reference's added for a scan handed over).
        fallback: the safety net (``None``: the model answers every scan).

    Yields:
        The lines of :func:`hscc_mri.inference.result_line`: ``file``, ``label``,
        ``probabilities``, ``runtime``, ``precision``, ``latency_ms`` when timed, and
        ``slice``/``slices``/``series``/``notes`` as the scan has them, ``model_ms``, and
        with ``fallback`` ``answered_by`` (``compressed``/``uncompressed``) and
        ``confidence`` (``measure``, ``value``, ``threshold``, ``compressed_label``); or
        ``{file, error}``.
        Probabilities equal those of :func:`hscc_mri.inference.predict_file` up to the
        float rounding of a batched call (measured below 1e-6 on the registry models).
    """
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, got {batch_size}")

    def read(path: str) -> ScanInput:
        return read_scan_input(path, model.spec, slice_index, series)

    if readers < 1:
        done = (_done(read(str(f))) for f in files)
        yield from _classify(model, done, 1 if repeats else batch_size, repeats, fallback)
        return
    ahead = ReadAhead([str(f) for f in files], read, workers=readers, depth=max(2 * batch_size, readers))
    try:
        yield from _classify(model, ahead.futures(), 1 if repeats else batch_size, repeats, fallback)
    finally:  # also on Ctrl+C or when the caller stops early: stop reading
        ahead.close()


def _done(item: ScanInput) -> Future:
    future: Future = Future()
    future.set_result(item)
    return future


def _classify(model: nn.Module, futures: Iterator[Future], batch_size: int,
              repeats: int, fallback: Fallback | None = None) -> Iterator[dict[str, Any]]:
    """Take read inputs in order; run whatever is read (at least one, at most
    ``batch_size``) as one batch; yield the lines in order."""
    batcher = _Batcher(model)
    reference = _Batcher(fallback.reference) if fallback is not None else None
    waiting: Future | None = None
    while True:
        head = waiting or next(futures, None)
        waiting = None
        if head is None:
            return
        pending: list[ScanInput] = [head.result()]  # blocks for the next file only
        inputs = int(pending[0].x is not None)
        while inputs < batch_size:  # then take what is already read, never wait for more
            nxt = next(futures, None)
            if nxt is None:
                break
            if not nxt.done():
                waiting = nxt
                break
            pending.append(nxt.result())
            inputs += pending[-1].x is not None
        yield from _answer(model, batcher, pending, repeats, fallback, reference)


def _answer(model: nn.Module, batcher: _Batcher, pending: list[ScanInput], repeats: int,
            fallback: Fallback | None = None, reference: _Batcher | None = None) -> Iterator[dict[str, Any]]:
    """The lines of ``pending`` in order: unreadable files before the first input at once,
    the rest after the model has run."""
    first = next((i for i, item in enumerate(pending) if item.x is not None), len(pending))
    for item in pending[:first]:
        yield result_line(model, item)
    rest = pending[first:]
    if not rest:
        return
    inputs = [item.x for item in rest if item.x is not None]
    if repeats:
        timed = [predict_tensor(model, x, repeats) for x in inputs]
        probs = [list(t["probabilities"].values()) for t in timed]
        latency = [t["latency_ms"] for t in timed]
        share = latency
    else:
        t0 = time.perf_counter()
        probs = batcher.probabilities(inputs)
        share = [1e3 * (time.perf_counter() - t0) / len(inputs)] * len(inputs)
        latency = [None] * len(inputs)
    extras: list[dict[str, Any]] = [{} for _ in inputs]
    if fallback is not None:
        probs, latency, share, extras = _safety_net(fallback, reference, inputs, probs, latency, share, repeats)
    answers = iter(zip(probs, latency, share, extras))
    for item in rest:
        if item.x is None:
            yield result_line(model, item)
            continue
        p, ms, model_ms, extra = next(answers)
        yield {**result_line(model, item, p, ms), "model_ms": round(model_ms, 3), **extra}


def _safety_net(fallback: Fallback, reference: _Batcher, inputs: list[torch.Tensor], probs: list[list[float]],
                latency: list[float | None], share: list[float], repeats: int):
    """Hand the inputs whose compressed answer is below the threshold to the reference:
    its probabilities replace theirs, its time is added to theirs."""
    p = torch.tensor(probs, dtype=torch.float64)
    handed = fallback.net.hand_over(p).tolist()
    scores = fallback.net.confidence(p).tolist()
    names = list(fallback.reference.spec.class_names)
    idx = [i for i, h in enumerate(handed) if h]
    probs, latency, share = list(probs), list(latency), list(share)
    if idx:
        if repeats:
            timed = [predict_tensor(fallback.reference, inputs[i], repeats) for i in idx]
            ref_probs = [list(t["probabilities"].values()) for t in timed]
            ref_ms = [t["latency_ms"] for t in timed]
        else:
            t0 = time.perf_counter()
            ref_probs = reference.probabilities([inputs[i] for i in idx])
            ref_ms = [1e3 * (time.perf_counter() - t0) / len(idx)] * len(idx)
        for i, rp, ms in zip(idx, ref_probs, ref_ms):
            probs[i] = rp
            share[i] += ms
            if latency[i] is not None:
                latency[i] += ms
    threshold = fallback.net.threshold
    extras = [{"answered_by": "uncompressed" if h else "compressed",
               "confidence": {"measure": fallback.net.measure, "value": round(s, 6),
                              "threshold": None if threshold is None else round(threshold, 6),
                              "compressed_label": names[max(range(len(q)), key=q.__getitem__)]}}
              for h, s, q in zip(handed, scores, p.tolist())]
    return probs, latency, share, extras
