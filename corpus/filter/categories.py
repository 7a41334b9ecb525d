"""Product category of a kept document: from given labels when there are any, else keyword rules.

The paper labelled pages with an LLM and distilled the labels into light classifiers. Here a user
brings such labels as a JSONL (`{"url" or "doc_id", "category"}` per line) or CSV file
(`corpus.filter.category_labels`); documents without a label get the keyword rules below, which
score title and product fields three times as much as body text.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

from infra.core import fs

CATEGORIES = ("fashion", "beauty", "electronics", "home", "grocery", "automotive", "sports", "toys", "other")

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "fashion": (
        "dress", "shirt", "t-shirt", "jeans", "jacket", "coat", "shoe", "shoes", "sneaker", "sneakers", "boots",
        "skirt", "sweater", "hoodie", "handbag", "apparel", "clothing", "fashion", "denim", "sandals", "scarf",
        "jewelry", "necklace", "earrings", "watch", "sunglasses", "cotton", "leggings", "blouse", "outfit",
    ),
    "beauty": (
        "skincare", "serum", "moisturizer", "lipstick", "mascara", "makeup", "cosmetics", "fragrance", "perfume",
        "shampoo", "conditioner", "lotion", "cleanser", "beauty", "nail", "foundation", "spf", "eyeliner", "hair",
    ),
    "electronics": (
        "laptop", "smartphone", "phone", "tablet", "camera", "headphones", "earbuds", "bluetooth", "usb", "hdmi",
        "monitor", "tv", "television", "speaker", "charger", "battery", "processor", "cpu", "gpu", "ssd", "ram",
        "wireless", "electronics", "console", "gaming", "router", "keyboard", "mouse", "4k", "lens", "guitar",
    ),
    "home": (
        "sofa", "couch", "chair", "table", "bed", "mattress", "pillow", "lamp", "rug", "curtain", "kitchen",
        "cookware", "furniture", "decor", "bedding", "towel", "shelf", "garden", "vacuum", "blender", "desk",
        "wardrobe", "cabinet", "dishwasher", "homeware",
    ),
    "grocery": (
        "coffee", "tea", "snack", "chocolate", "organic", "grocery", "food", "pasta", "sauce", "cereal", "juice",
        "wine", "beer", "spice", "flour", "honey", "nuts", "gluten", "vegan", "protein", "fruit", "cheese",
    ),
    "automotive": (
        "car", "tire", "tires", "wheel", "brake", "engine", "motor", "oil", "automotive", "vehicle", "truck",
        "headlight", "wiper", "bumper", "exhaust", "spark", "suspension", "motorcycle", "auto",
    ),
    "sports": (
        "fitness", "yoga", "running", "bike", "bicycle", "cycling", "golf", "tennis", "football", "soccer",
        "basketball", "camping", "hiking", "tent", "backpack", "outdoor", "gym", "dumbbell", "treadmill", "ski",
        "fishing", "sports", "climbing", "swim",
    ),
    "toys": (
        "toy", "toys", "lego", "puzzle", "doll", "kids", "children", "baby", "board game", "plush", "stroller",
        "toddler", "playset", "action figure", "nursery",
    ),
}
_PATTERNS = {
    cat: re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    for cat, words in _KEYWORDS.items()
}
_MIN_SCORE = 2  # fewer keyword hits than this: "other"


def categorize(title: str | None, text: str | None, product_text: str | None = None, max_chars: int = 5000) -> str:
    """The best-scoring category by keyword hits (title and product weigh 3x), or 'other'."""
    strong = " ".join(part for part in (title, product_text) if part)
    body = (text or "")[:max_chars]
    scores = Counter()
    for cat, pattern in _PATTERNS.items():
        score = 3 * len(pattern.findall(strong)) + len(pattern.findall(body))
        if score:
            scores[cat] = score
    if not scores:
        return "other"
    # Ties go to the earlier category in CATEGORIES, so the result never depends on dict order.
    best = max(scores.items(), key=lambda kv: (kv[1], -CATEGORIES.index(kv[0])))
    return best[0] if best[1] >= _MIN_SCORE else "other"


def normalize_category(label: str | None) -> str:
    """Map a free-form label (e.g. an LLM's answer) onto CATEGORIES; unknown labels become 'other'."""
    value = (label or "").strip().lower()
    if value in CATEGORIES:
        return value
    for cat in CATEGORIES:
        if cat in value:
            return cat
    return categorize(value, None) if value else "other"


def load_category_labels(path: str | Path) -> dict[str, str]:
    """Labels keyed by url and/or doc_id from JSONL (`url`/`doc_id`, `category`) or CSV with the same columns.

    `path` may be local or a URI (infra.core.fs); the file is read once, on the driver.
    """
    text = fs.read_text(path)
    if str(path).lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    labels: dict[str, str] = {}
    for row in rows:
        category = normalize_category(row.get("category") or row.get("label"))
        for key in ("url", "doc_id"):
            if row.get(key):
                labels[str(row[key])] = category
    return labels
