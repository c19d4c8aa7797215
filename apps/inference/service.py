"""Inference endpoints: batched digit classification and streamed text generation.

HTTP (route ``/digits``): ``POST /digits`` with ``{"pixels": [64 numbers in 0..16]}`` answers
``{"digit": d}``; requests arriving together are classified in one batch by ``@serve.batch``
(``GET /digits`` reports the model's accuracy and the batch sizes seen). 400 for a bad body.

HTTP (route ``/generate``): ``GET /generate?prompt=...&max_tokens=N`` streams the generated words
as they are produced, one per line. The ingress calls the :class:`TokenModel` replicas through a
handle with ``max_tokens`` as a keyword, so :class:`yuanrong.endpoint.OutstandingWorkRouter`
routes by tokens still to generate.

Decode time: the bigram model computes a word in microseconds, far below a real model's step. To
make the serving behaviour (queueing, routing) that of a generative model, each replica produces
one token at a time for one request at a time and spends ``token_time_s`` per token (an asyncio
sleep, so the CPU stays free for the other apps). This is a stated simulation of decode cost, not
a measurement of a large model.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ray import serve

import yuanrong as yr
from apps.inference.models import BigramLM, train_digits
from yuanrong.endpoint import OutstandingWorkRouter, endpoint, run

LIGHT = yr.InvokeOptions(cpu=250, memory=0)
MAX_TOKENS_LIMIT = 4096


def _bad_request(message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"type": "BadRequest", "message": message}}, status_code=400)


class DigitClassifier:
    """Trains on scikit-learn's bundled digits when the replica starts; classifies in batches."""

    def __init__(self) -> None:
        self._model = train_digits()
        self.batch_sizes: list[int] = []

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def predict(self, images: list[list[float]]) -> list[int]:
        self.batch_sizes.append(len(images))
        return self._model.predict(images)

    async def __call__(self, request: Any) -> Any:
        if request.method == "GET":
            return {"accuracy": self._model.accuracy, "batches": len(self.batch_sizes),
                    "max_batch": max(self.batch_sizes, default=0)}
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _bad_request(f"the body is not valid JSON ({e}); send {{\"pixels\": [64 numbers]}}.")
        pixels = body.get("pixels") if isinstance(body, dict) else None
        if not (isinstance(pixels, list) and len(pixels) == 64
                and all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 16 for p in pixels)):
            shown = f"a list of {len(pixels)}" if isinstance(pixels, list) else repr(pixels)[:40]
            return _bad_request(f"'pixels' must be 64 numbers in 0..16 (an 8x8 image, row by row); got {shown}.")
        return {"digit": await self.predict([float(p) for p in pixels])}


class TokenModel:
    """One generation stream at a time per replica, ``token_time_s`` per token (see the module doc)."""

    def __init__(self, token_time_s: float = 0.005) -> None:
        import os

        self._lm = BigramLM()
        self._token_time_s = token_time_s
        self._busy = asyncio.Lock()
        self._pid = os.getpid()

    async def generate(self, prompt: str = "", max_tokens: int = 16):
        async with self._busy:
            for word in self._lm.tokens(prompt, max_tokens):
                await asyncio.sleep(self._token_time_s)
                yield word

    async def complete(self, prompt: str = "", max_tokens: int = 16) -> dict[str, Any]:
        words = [w async for w in self.generate(prompt, max_tokens)]
        return {"text": " ".join(words), "tokens": len(words), "replica": self._pid}


class GenerateAPI:
    """HTTP ingress: validates the query, streams words from a :class:`TokenModel` replica."""

    def __init__(self, model: Any) -> None:
        self._model = model

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import StreamingResponse

        prompt = request.query_params.get("prompt", "")
        raw = request.query_params.get("max_tokens", "16")
        try:
            max_tokens = int(raw)
        except ValueError:
            return _bad_request(f"max_tokens={raw!r} is not an integer; use e.g. max_tokens=32.")
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            return _bad_request(f"max_tokens={max_tokens} is out of range; use 1..{MAX_TOKENS_LIMIT}.")
        gen = self._model.options(stream=True).generate.remote(prompt=prompt, max_tokens=max_tokens)

        async def lines():
            async for word in gen:
                yield word + "\n"

        return StreamingResponse(lines(), media_type="text/plain")


def token_model_endpoint(*, pool: str | None = "cloud", num_replicas: int = 2, router: bool = True,
                         name: str = "TokenModel") -> Any:
    """The generator endpoint; with ``router=True`` it is routed by outstanding tokens."""
    kwargs: dict[str, Any] = {}
    if router:
        kwargs = {"request_router": OutstandingWorkRouter, "request_router_kwargs": {"cost_key": "max_tokens"}}
    return endpoint(TokenModel, name=name, pool=pool, num_replicas=num_replicas, max_ongoing_requests=256,
                    invoke_options=LIGHT, **kwargs)


def deploy_inference(*, classifier_pool: str | None = "edge-2", generator_pool: str | None = "cloud",
                     generator_replicas: int = 2, token_time_s: float = 0.005) -> dict[str, Any]:
    """Deploy the digits endpoint (``/digits``) and the generator (``/generate``); returns their handles."""
    classifier = endpoint(DigitClassifier, route="/digits", pool=classifier_pool, num_replicas=1,
                          max_ongoing_requests=64, invoke_options=LIGHT)
    digits = run(classifier, name="digits")
    model = token_model_endpoint(pool=generator_pool, num_replicas=generator_replicas).bind(token_time_s)
    api = endpoint(GenerateAPI, route="/generate", pool=generator_pool, max_ongoing_requests=256,
                   invoke_options=yr.InvokeOptions(cpu=100, memory=0))
    generate = run(api.bind(model), name="generate", route="/generate")
    return {"digits": digits, "generate": generate}
