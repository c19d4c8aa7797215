"""The models, trained at start-up on data that installed packages ship (nothing is downloaded).

* :func:`train_digits`: scikit-learn's logistic regression on scikit-learn's bundled 8x8 digits
  (1,797 images); about 0.96 accuracy on a held-out quarter, trained in about a second on one core.
* :class:`BigramLM`: a word-level bigram language model trained on text shipped with Python
  itself (the Zen of Python and the docstrings of standard-library modules). It is tiny and its
  text is not fluent; it exists to produce real tokens one at a time for the streaming endpoint.
"""

from __future__ import annotations

import dataclasses
import importlib
import random
import re
from collections import Counter, defaultdict
from typing import Any

_CORPUS_MODULES = ("this", "collections", "json", "argparse", "asyncio", "functools", "itertools", "pathlib",
                   "statistics", "textwrap", "unittest", "dataclasses", "logging", "subprocess", "typing")


@dataclasses.dataclass
class DigitsModel:
    """A trained digits classifier.

    Attributes:
        model: The fitted scikit-learn estimator.
        accuracy: Accuracy on the held-out test split.
        test_x: Held-out images (for clients and tests), each 64 pixels in 0..16.
        test_y: Their labels.
    """

    model: Any
    accuracy: float
    test_x: Any
    test_y: Any

    def predict(self, pixels: Any) -> list[int]:
        return [int(v) for v in self.model.predict(pixels)]


def train_digits(seed: int = 0) -> DigitsModel:
    """Train a logistic-regression digits classifier on scikit-learn's bundled dataset."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    model = LogisticRegression(max_iter=2000)
    model.fit(x_train, y_train)
    return DigitsModel(model=model, accuracy=float(model.score(x_test, y_test)), test_x=x_test, test_y=y_test)


def _corpus() -> str:
    texts = []
    for name in _CORPUS_MODULES:
        if name == "this":
            import codecs
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                this = importlib.import_module("this")
            texts.append(codecs.decode(this.s, "rot13"))
            continue
        module = importlib.import_module(name)
        texts.append(module.__doc__ or "")
        for value in vars(module).values():
            doc = getattr(value, "__doc__", None)
            if isinstance(doc, str) and getattr(value, "__module__", None) == name:
                texts.append(doc)
    return "\n".join(texts)


class BigramLM:
    """Word bigram model: the next word is drawn by how often it followed the previous one."""

    def __init__(self, text: str | None = None) -> None:
        words = re.findall(r"[A-Za-z][A-Za-z'-]*|[.,;:!?]", text if text is not None else _corpus())
        self.follows: dict[str, Counter] = defaultdict(Counter)
        for a, b in zip(words, words[1:]):
            self.follows[a.lower()][b] += 1
        self.vocabulary = sorted({w.lower() for w in words})

    def tokens(self, prompt: str, max_tokens: int, *, seed: int = 0):
        """Yield up to ``max_tokens`` words continuing ``prompt`` (deterministic for a seed)."""
        rng = random.Random(f"{prompt}|{seed}")
        words = re.findall(r"[A-Za-z][A-Za-z'-]*", prompt)
        word = words[-1].lower() if words and words[-1].lower() in self.follows else rng.choice(self.vocabulary)
        for _ in range(max_tokens):
            options = self.follows.get(word.lower())
            if not options:
                word = rng.choice(self.vocabulary)
            else:
                choices, weights = zip(*options.items())
                word = rng.choices(choices, weights=weights)[0]
            yield word
