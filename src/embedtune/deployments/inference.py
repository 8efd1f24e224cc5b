"""Models in memory and the dynamic batcher that encodes for ``/v1/embeddings``.

Each loaded model has one batcher thread. Requests hand their texts to it and await a
future; the thread takes the first waiting request, gathers the others that arrive within
``inference_batch_wait_ms`` (up to ``inference_max_batch_texts`` texts) and encodes them in
one ``SentenceTransformer.encode`` call. The event loop only waits on the future.

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
import torch
from sentence_transformers import SentenceTransformer

from embedtune import telemetry
from embedtune.config import Settings

logger = logging.getLogger(__name__)


class ModelUnloaded(Exception):
    """The model was unloaded (least recently used) before the texts reached it."""


class ModelNotServable(Exception):
    """Sentence-Transformers cannot load the model directory."""


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


def load_sentence_transformer(path: Path) -> SentenceTransformer:
    """Load a model for inference on the GPU if there is one; raises ModelNotServable."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:
        raise ModelNotServable(f"{type(exc).__name__}: {exc}") from exc
    model.eval()
    return model


class LoadedModel:
    """A model in memory with its batcher thread."""

    def __init__(
        self,
        model_id: str,
        model: SentenceTransformer,
        *,
        wait_s: float,
        max_batch_texts: int,
        encode_batch_size: int,
    ) -> None:
        self.model_id = model_id
        self.model = model
        self._wait_s = wait_s
        self._max_batch_texts = max_batch_texts
        self._encode_batch_size = encode_batch_size
        tokenizer = getattr(model, "tokenizer", None)
        self._tokenizer = tokenizer if callable(tokenizer) else None
        self._max_tokens: int | None = getattr(model, "max_seq_length", None)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"batcher-{model_id}", daemon=True)
        self._thread.start()

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
            self._encode(group)

    def _token_counts(self, texts: list[str]) -> list[int]:
        if self._tokenizer is None:
            return [len(text.split()) for text in texts]
        encoded = self._tokenizer(
            texts,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def _encode(self, group: list[_Job]) -> None:
        try:
            accepted: list[tuple[_Job, list[int]]] = []
            counts = self._token_counts([text for job in group for text in job.texts])
            start = 0
            for job in group:
                tokens, start = counts[start : start + len(job.texts)], start + len(job.texts)
                limit = self._max_tokens
                too_long = [i for i, n in enumerate(tokens) if limit is not None and n > limit]
                if too_long and limit is not None:
                    job.future.set_exception(InputTooLong(too_long, limit))
                else:
                    accepted.append((job, tokens))
            if not accepted:
                return
            with torch.inference_mode():
                embeddings = self.model.encode(
                    [text for job, _ in accepted for text in job.texts],
                    batch_size=self._encode_batch_size,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            start = 0
            for job, tokens in accepted:
                end = start + len(job.texts)
                job.future.set_result(Encoded(embeddings[start:end], tokens))
                start = end
        except Exception as exc:
            logger.exception("encoding with model_id=%s failed", self.model_id)
            for job in group:
                if not job.future.done():
                    job.future.set_exception(exc)


Loader = Callable[[str, Path], LoadedModel]


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
    ) -> None:
        def loader(model_id: str, path: Path) -> LoadedModel:
            return LoadedModel(
                model_id,
                load_sentence_transformer(path),
                wait_s=batch_wait_ms / 1000,
                max_batch_texts=max_batch_texts,
                encode_batch_size=encode_batch_size,
            )

        self.models = ModelCache(max_loaded_models, loader)
        self.blue = BlueState()

    @classmethod
    def from_settings(cls, settings: Settings) -> Inference:
        return cls(
            max_loaded_models=settings.max_loaded_models,
            batch_wait_ms=settings.inference_batch_wait_ms,
            max_batch_texts=settings.inference_max_batch_texts,
            encode_batch_size=settings.inference_encode_batch_size,
        )

    def close(self) -> None:
        self.models.close()
