"""Language id: py3langid's bundled model, and a fastText model given by path."""

from __future__ import annotations

import pytest

from corpus.extract.stage import LanguageIdentifier, identify_language

TEXTS = {
    "en": "The running shoes are made from soft merino wool and can be washed in the machine.",
    "de": "Die Laufschuhe sind aus weicher Merinowolle gefertigt und können in der Maschine gewaschen werden.",
    "fr": "Les chaussures de course sont fabriquées en laine mérinos douce et se lavent en machine.",
}


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_bundled_model_identifies_english_german_french(lang):
    found, score = identify_language(TEXTS[lang])
    assert found == lang and 0.5 < score <= 1.0


def test_empty_text_has_no_language():
    assert identify_language("   \n") == (None, None)


def test_fasttext_model_from_a_path(tmp_path):
    import fasttext

    # a tiny supervised model trained here stands in for lid.176.bin (same API, same label format)
    lines = [f"__label__{lang} {text}" for lang, text in TEXTS.items() for _ in range(20)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(str(tmp_path / "train.txt"), epoch=25, minn=2, maxn=4, dim=16, verbose=0)
    model.save_model(str(tmp_path / "lid.bin"))
    identifier = LanguageIdentifier(str(tmp_path / "lid.bin"))
    assert identifier.backend == "fasttext"
    for lang, text in TEXTS.items():
        found, score = identifier.identify(text)
        assert found == lang and 0 < score <= 1
