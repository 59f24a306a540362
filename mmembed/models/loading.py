"""Loading open_clip weights with torch: where the model hub is asked whether it can be reached,
offline mode is decided, and a load failure becomes one line that says what to do. The
encoder (``encoder.py``) calls ``load_open_clip``; nothing else here runs at inference.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ModelLoadError

__all__ = ["load_open_clip", "hub_reachable", "LOCAL_PREFIX"]

LOCAL_PREFIX = "local-dir:"  # a model in a local folder: never asked of the hub


def load_open_clip(spec: Any, device: str, precision: str) -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) of ``spec`` (a ``ModelSpec``) on ``device`` at ``precision``
    (torch's); raises ``ModelLoadError`` with advice."""
    import open_clip

    from .families import check_folder, check_tokenizer, local_kwargs, needs_hf

    kwargs: dict[str, Any] = {}
    if spec.name.startswith(LOCAL_PREFIX):
        folder = spec.name[len(LOCAL_PREFIX):]
        check_folder(folder)  # tokenizer files, the HF text config: one line naming the file
        kwargs = local_kwargs(folder)
    needs_hf(spec)  # the hf extra, named before open_clip fails deep inside
    try:
        with _quiet_root_logging(), _offline_unless_hub_reachable(spec):
            # bf16 on a CPU: every weight in bf16 ('pure'); autocast measured 2-5x slower here
            model, preprocess = open_clip.create_model_from_pretrained(
                spec.name, pretrained=spec.pretrained, device=device,
                precision="pure_bf16" if precision == "bf16" and device == "cpu" else precision, **kwargs,
            )
            tokenizer = open_clip.get_tokenizer(spec.name)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"model {spec.label}: {exc}; check the path") from None
    except Exception as exc:  # noqa: BLE001 - open_clip raises bare RuntimeErrors for most failures
        raise ModelLoadError(_explain_load_failure(spec, exc)) from exc
    check_tokenizer(spec, model, tokenizer)  # a vocabulary larger than the model's embedding
    return model, preprocess, tokenizer


def _explain_load_failure(spec: Any, exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "install transformers" in text or "No module named 'transformers'" in text:
        return f"model {spec.label} needs transformers (a Hugging Face text tower or tokenizer); pip install 'mmembed[hf]'"
    if "not found in built-ins" in text:
        return (
            f"unknown model {spec.name!r}; use an open_clip architecture name "
            "(open_clip.list_models()), hf-hub:ORG/REPO, or local-dir:PATH"
        )
    if "not a known tag" in text:
        return (
            f"pretrained tag {spec.pretrained!r} is not known for {spec.name}; see "
            f"open_clip.list_pretrained_tags_by_model('{spec.name}')"
        )
    if spec.name.startswith(LOCAL_PREFIX):
        return f"could not load model folder {spec.name[len(LOCAL_PREFIX):]}: {text[:200]}"
    network = ("download", "hub", "connection", "resolve", "offline", "internet", "timed out", "urlopen")
    if not any(word in text.lower() for word in network):
        return f"could not load model {spec.label}: {text[:200]}"
    return (
        f"could not download weights for {spec.label}: offline, or the model hub is unreachable. "
        "Run once with network access to cache them, or pass --model local-dir:PATH for a folder "
        "holding open_clip_config.json and weights"
    )


_HUB_PROBE: list[bool] = []  # the answer of the first probe, kept for the process


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub's host (``HF_ENDPOINT``, else huggingface.co) accepts a TCP
    connection within ``timeout`` seconds. Asked once per process, in a thread, so that neither
    a slow DNS nor a dropped packet holds the caller longer than ``timeout``."""
    if _HUB_PROBE:
        return _HUB_PROBE[0]
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    answer: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True, name="mmembed-hub-probe")
    thread.start()
    thread.join(timeout)
    _HUB_PROBE.append(bool(answer and answer[0]))
    return _HUB_PROBE[0]


@contextmanager
def _offline_unless_hub_reachable(spec: Any) -> Iterator[None]:
    """Load hub weights from the local cache only when the hub cannot be reached: otherwise a
    machine without network retries for about 49 s before failing (issue 10). Cached weights
    still load; missing ones fail at once with the usual one-line error."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if spec.name.startswith(LOCAL_PREFIX) or offline or hub_reachable():
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


@contextmanager
def _quiet_root_logging() -> Iterator[None]:
    """open_clip reports load failures with root-logger ``logging.error``; we raise instead.

    With no root handler, such a call would also install a stderr handler for the rest of the
    process (``basicConfig``), so a NullHandler stands in while loading, and the root logger
    drops records made meanwhile. The caller's own logging setup is left as it was.
    """
    import logging

    root = logging.getLogger()
    stand_in = logging.NullHandler() if not root.handlers else None
    drop = logging.Filter("mmembed.never")  # matches no logger name: drops every record
    if stand_in is not None:
        root.addHandler(stand_in)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if stand_in is not None:
            root.removeHandler(stand_in)

