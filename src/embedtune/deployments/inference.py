"""Models in memory and the dynamic batcher that encodes for ``/v1/embeddings``.

Each loaded model has one batcher thread. Requests hand their texts to it and await a
future; the thread takes the first waiting request, gathers the others that arrive within
``inference_batch_wait_ms`` (up to ``inference_max_batch_texts`` texts) and encodes them in
one call of the model's engine (see :mod:`embedtune.deployments.backends`), texts sorted by
length so that each batch pads little. If a group fails, each of its requests is encoded
again on its own, so a text that breaks the engine fails only the request that sent it. The
event loop only waits on the future.

Texts longer than the model's ``max_seq_length`` (in tokens, special tokens included) are
refused, not truncated: the request fails with 422 ``input_too_long`` naming them, as the
OpenAI API does, because an embedding of a cut text silently misrepresents it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from embedtune.core import telemetry
from embedtune.core.config import Settings
from embedtune.deployments.backends import Encoder, TorchEncoder, load_sentence_transformer

logger = logging.getLogger(__name__)


class ModelUnloaded(Exception):
    """The model was unloaded (least recently used) before the texts reached it."""


class InputTooLong(Exception):
    """Some texts have more tokens than the model takes."""

    def __init__(self, indexes: list[int], limit: int) -> None:
        super().__init__(f"input(s) {indexes} exceed the model's limit of {limit} tokens")
        self.indexes = indexes
        self.limit = limit


@dataclass(frozen=True)
class Encoded:
    embeddings: npt.NDArray[np.float32]
    #: Tokens of each text, special tokens included.
    tokens: list[int]


@dataclass
class _Job:
    texts: list[str]
    future: Future[Encoded] = field(default_factory=Future)


class LoadedModel:
    """A model in memory with its batcher thread."""

    def __init__(
        self,
        model_id: str,
        encoder: Encoder,
        *,
        wait_s: float,
        max_batch_texts: int,
        encode_batch_size: int,
        detail: str = "",
    ) -> None:
        self.model_id = model_id
        self.encoder = encoder
        #: Why this engine serves (a fallback says what it fell back from).
        self.detail = detail
        self._wait_s = wait_s
        self._max_batch_texts = max_batch_texts
        self._encode_batch_size = encode_batch_size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"batcher-{model_id}", daemon=True)
        self._thread.start()

    @property
    def dimension(self) -> int:
        return self.encoder.dimension

    def submit(self, texts: list[str]) -> Future[Encoded]:
        """Queue ``texts`` for the next group; raises ModelUnloaded once the model is closed.

        The future raises InputTooLong, or whatever the encoding raised.
        """
        job = _Job(texts)
        telemetry.observe_embedding_request(len(texts))
        with self._lock:
            if self._closed:
                raise ModelUnloaded(self.model_id)
            self._jobs.put(job)
        return job.future

    def close(self) -> None:
        """Encode what is queued, then stop the thread (does not wait for it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            group, count = [first], len(first.texts)
            deadline = time.monotonic() + self._wait_s
            while count < self._max_batch_texts:
                try:
                    job = self._jobs.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                group.append(job)
                count += len(job.texts)
            telemetry.observe_encode_batch(count)
            self._encode_isolated(group)

    def _encode_isolated(self, group: list[_Job]) -> None:
        """Encodes the group at once; if that fails, each request alone, so only the ones
        that fail by themselves get the error."""
        try:
            self._encode(group)
            return
        except Exception as exc:
            if len(group) == 1:
                self._fail(group[0], exc)
                return
        logger.warning(
            "a group of %d requests to model_id=%s failed; encoding each alone",
            len(group),
            self.model_id,
        )
        for job in group:
            try:
                self._encode([job])
            except Exception as exc:
                self._fail(job, exc)

    def _fail(self, job: _Job, exc: Exception) -> None:
        logger.error("encoding with model_id=%s failed", self.model_id, exc_info=exc)
        if not job.future.done():
            job.future.set_exception(exc)

    def _encode(self, group: list[_Job]) -> None:
        """Encodes the group's texts in one call, sorted by length; raises what it raised
        before any future of the group is set (InputTooLong is the job's own outcome)."""
        accepted: list[tuple[_Job, list[int]]] = []
        rejected: list[tuple[_Job, InputTooLong]] = []
        counts = self.encoder.token_counts([text for job in group for text in job.texts])
        start, limit = 0, self.encoder.max_seq_length
        for job in group:
            tokens, start = counts[start : start + len(job.texts)], start + len(job.texts)
            too_long = [i for i, n in enumerate(tokens) if limit is not None and n > limit]
            if too_long and limit is not None:
                rejected.append((job, InputTooLong(too_long, limit)))
            else:
                accepted.append((job, tokens))
        texts = [text for job, _ in accepted for text in job.texts]
        embeddings = np.zeros((0, self.encoder.dimension), np.float32)
        if texts:
            lengths = [n for _, tokens in accepted for n in tokens]
            order = np.argsort(lengths, kind="stable")
            sorted_vectors = self.encoder.encode([texts[i] for i in order], self._encode_batch_size)
            embeddings = np.empty_like(sorted_vectors)
            embeddings[order] = sorted_vectors
        for job, error in rejected:
            job.future.set_exception(error)
        start = 0
        for job, tokens in accepted:
            end = start + len(job.texts)
            job.future.set_result(Encoded(embeddings[start:end], tokens))
            start = end


Loader = Callable[[str, Path], LoadedModel]
#: ``open(model_id, path)``: the engine that serves a model, and why that one.
EncoderOpener = Callable[[str, Path], tuple[Encoder, str]]


def open_with_torch(model_id: str, path: Path) -> tuple[Encoder, str]:
    """Raises ModelNotServable."""
    return TorchEncoder(load_sentence_transformer(path)), "torch"


class ModelCache:
    """At most ``capacity`` loaded models; loading one more unloads the least recently used.

    A model being replaced keeps encoding what was already queued for it, and requests that
    still hold it get ModelUnloaded on submit and resolve their model again.
    """

    def __init__(self, capacity: int, loader: Loader) -> None:
        self._capacity = capacity
        self._loader = loader
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}

    def get(self, model_id: str) -> LoadedModel | None:
        """The model if it is loaded (and marks it used); never blocks on a load."""
        with self._lock:
            model = self._models.get(model_id)
            if model is not None:
                self._models.move_to_end(model_id)
            return model

    def load(self, model_id: str, path: Path) -> LoadedModel:
        """The loaded model, loading it if needed (blocking: call from a thread).

        Raises ModelNotServable. Concurrent loads of one model load it once.
        """
        with self._lock:
            load_lock = self._load_locks.setdefault(model_id, threading.Lock())
        with load_lock:
            loaded = self.get(model_id)
            if loaded is not None:
                return loaded
            started = time.perf_counter()
            loaded = self._loader(model_id, path)
            logger.info("loaded model_id=%s in %.2f s", model_id, time.perf_counter() - started)
            evicted: list[LoadedModel] = []
            with self._lock:
                self._models[model_id] = loaded
                while len(self._models) > self._capacity:
                    evicted.append(self._models.popitem(last=False)[1])
            for model in evicted:
                logger.info("unloading model_id=%s (least recently used)", model.model_id)
                model.close()
            return loaded

    def reload(self, model_id: str, path: Path) -> LoadedModel | None:
        """Loads ``model_id`` again (for another engine) if it is loaded, and swaps the new
        one in; the old one finishes what was queued for it. None if it was not loaded."""
        with self._lock:
            load_lock = self._load_locks.setdefault(model_id, threading.Lock())
        with load_lock:
            if self.get(model_id) is None:
                return None
            loaded = self._loader(model_id, path)
            with self._lock:
                old = self._models.get(model_id)
                self._models[model_id] = loaded
            if old is not None:
                old.close()
            return loaded

    def loaded(self) -> list[LoadedModel]:
        """The models in memory, the most recently used first."""
        with self._lock:
            return list(reversed(self._models.values()))

    def loaded_ids(self) -> list[str]:
        """Model ids in memory, the most recently used first."""
        with self._lock:
            return list(reversed(self._models))

    def close(self) -> None:
        with self._lock:
            models, self._models = list(self._models.values()), OrderedDict()
        for model in models:
            model.close()
        for model in models:
            model.join()


@dataclass(frozen=True)
class BlueRef:
    model_id: str
    version: int


class BlueState:
    """The blue model this process serves. Only ever moves to a newer version, so a slow
    refresh cannot undo a switch made meanwhile by this process."""

    def __init__(self) -> None:
        self._current: BlueRef | None = None
        self._lock = threading.Lock()

    def get(self) -> BlueRef | None:
        return self._current

    def advance(self, ref: BlueRef) -> None:
        with self._lock:
            if self._current is None or ref.version > self._current.version:
                self._current = ref


class Inference:
    """What one API process holds for serving: its model cache and its view of blue."""

    def __init__(
        self,
        *,
        max_loaded_models: int,
        batch_wait_ms: float,
        max_batch_texts: int,
        encode_batch_size: int,
        open_encoder: EncoderOpener = open_with_torch,
    ) -> None:
        def loader(model_id: str, path: Path) -> LoadedModel:
            encoder, detail = open_encoder(model_id, path)
            return LoadedModel(
                model_id,
                encoder,
                wait_s=batch_wait_ms / 1000,
                max_batch_texts=max_batch_texts,
                encode_batch_size=encode_batch_size,
                detail=detail,
            )

        self.models = ModelCache(max_loaded_models, loader)
        self.blue = BlueState()

    @classmethod
    def from_settings(
        cls, settings: Settings, open_encoder: EncoderOpener = open_with_torch
    ) -> Inference:
        return cls(
            max_loaded_models=settings.max_loaded_models,
            batch_wait_ms=settings.inference_batch_wait_ms,
            max_batch_texts=settings.inference_max_batch_texts,
            encode_batch_size=settings.inference_encode_batch_size,
            open_encoder=open_encoder,
        )

    def close(self) -> None:
        self.models.close()
