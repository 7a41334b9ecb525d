"""Language identification: py3langid's bundled model by default, fastText lid.176 when given a path.

Neither downloads anything: py3langid ships its model inside the package, and a fastText model is
only used from a local (or cluster-distributed) file the user provides. Models load once per
process (a Spark Python worker keeps its identifier between partitions).
"""

from __future__ import annotations

from functools import lru_cache

MAX_CHARS = 4000  # the first few thousand characters decide the language; bounds time on huge texts


class LanguageIdentifier:
    """`identify(text) -> (lang, score)` with an ISO 639-1 code and a probability in [0, 1]."""

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path
        self.backend = "fasttext" if model_path else "py3langid"

    def identify(self, text: str | None) -> tuple[str | None, float | None]:
        sample = " ".join((text or "")[:MAX_CHARS].split())
        if not sample:
            return None, None
        if self.model_path:
            model = _fasttext_model(self.model_path)
            labels, scores = model.predict(sample, k=1)
            return labels[0].removeprefix("__label__"), round(min(float(scores[0]), 1.0), 4)
        lang, score = _py3langid().classify(sample)
        return lang, round(float(score), 4)


@lru_cache(maxsize=1)
def _py3langid():
    from py3langid.langid import MODEL_DIR, MODEL_FILE
    from py3langid.langid import LanguageIdentifier as Py3LangId

    return Py3LangId.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=2)
def _fasttext_model(path: str):
    try:
        import fasttext
    except ImportError as err:  # pragma: no cover - a pinned dependency
        raise ImportError("fastText language id needs `pip install fasttext-numpy2-wheel`") from err
    return fasttext.load_model(path)


def identify_language(text: str | None, model_path: str | None = None) -> tuple[str | None, float | None]:
    """Language and score of a text (None, None for an empty one)."""
    return LanguageIdentifier(model_path).identify(text)
