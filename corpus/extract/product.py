"""Product structured data: schema.org Product / Offer / ItemList from JSON-LD and microdata.

Read with extruct, normalised into one flat dict per page (name, brand, description, price,
currency, sku, gtin) plus the names of listed products (ItemList) for collection pages. Pages
without markup cost almost nothing: extruct only runs when the raw HTML mentions a syntax.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from typing import Any

PRODUCT_FIELDS = ("name", "brand", "description", "price", "currency", "sku", "gtin")
_PRODUCT_TYPES = {"product", "productgroup", "individualproduct", "productmodel", "vehicle", "car"}
_OFFER_TYPES = {"offer", "aggregateoffer"}
_GTIN_KEYS = ("gtin", "gtin13", "gtin12", "gtin14", "gtin8", "isbn", "mpn")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"-?\d[\d.,\s]*")


@dataclass
class ProductData:
    """What a page's structured data says about products."""

    product: dict[str, str | None] | None = None
    markup: str | None = None  # "jsonld" / "microdata": the syntax holding Product markup (page or list)
    listed_names: list[str] = field(default_factory=list)  # ItemList entries (collection pages)


def extract_product_data(html: str, url: str | None = None, lowered: str | None = None) -> ProductData:
    """Parse JSON-LD and microdata when present and pick the main Product. Never raises on bad markup.

    Args:
        lowered: `html.lower()` when the caller has it already (saves a pass over big pages).
    """
    syntaxes = []
    lowered = lowered if lowered is not None else html.lower()
    if "application/ld+json" in lowered:
        syntaxes.append("json-ld")
    if "itemtype" in lowered:
        syntaxes.append("microdata")
    if not syntaxes:
        return ProductData()
    import extruct

    try:
        data = extruct.extract(html, base_url=url, syntaxes=syntaxes, uniform=True, errors="ignore")
    except Exception:  # extruct raises on odd markup; a page without usable markup is not an error
        return ProductData()
    result = ProductData()
    for syntax, markup in (("json-ld", "jsonld"), ("microdata", "microdata")):
        items = list(_walk(data.get(syntax) or []))
        products = [item for item, in_list in items if not in_list and _has_type(item, _PRODUCT_TYPES)]
        listed = [item for item, in_list in items if in_list and _has_type(item, _PRODUCT_TYPES)]
        if products and result.product is None:
            result.product = _normalise(_best(products))
        if (products or listed) and result.markup is None:
            result.markup = markup
        for item, _ in items:
            if _has_type(item, {"itemlist"}):
                result.listed_names.extend(_listed_names(item))
    if not result.listed_names and len(products_all := _all_products(data)) > 1:
        result.listed_names = [n for n in (_text(p.get("name")) for p in products_all) if n]
    result.listed_names = list(dict.fromkeys(result.listed_names))
    return result


def _walk(node: Any, in_list: bool = False):
    """(dict, inside an ItemList?) for every dict in a JSON-LD / microdata tree, outermost first."""
    if isinstance(node, list):
        for child in node:
            yield from _walk(child, in_list)
    elif isinstance(node, dict):
        yield node, in_list
        for key in ("@graph", "mainEntity", "itemListElement", "item", "hasVariant"):
            if key in node:
                yield from _walk(node[key], in_list or key == "itemListElement")


def _all_products(data: dict[str, Any]) -> list[dict]:
    items = list(_walk(data.get("json-ld") or [])) + list(_walk(data.get("microdata") or []))
    return [item for item, _ in items if _has_type(item, _PRODUCT_TYPES)]


def _types(item: dict) -> set[str]:
    kind = item.get("@type") or item.get("type") or []
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(k).rsplit("/", 1)[-1].lower() for k in kinds}


def _has_type(item: dict, wanted: set[str]) -> bool:
    return bool(_types(item) & wanted)


def _best(products: list[dict]) -> dict:
    """The product with the most filled fields: the page's main product, not a related one."""
    keys = ("name", "description", "offers", "sku", "brand")
    return max(products, key=lambda p: sum(1 for key in keys if p.get(key)))


def _text(value: Any) -> str | None:
    """A clean one-line string from a markup value (lists take the first, dicts their name)."""
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if isinstance(value, dict):
        value = value.get("name") or value.get("@value") or value.get("value")
        return _text(value)
    if value is None or isinstance(value, bool):
        return None
    text = _SPACE.sub(" ", _TAG.sub(" ", html_lib.unescape(str(value)))).strip()
    return text or None


def _offers(product: dict) -> list[dict]:
    offers = product.get("offers") or []
    offers = offers if isinstance(offers, list) else [offers]
    flat = []
    for offer in offers:
        if not isinstance(offer, dict):
            continue
        flat.append(offer)
        nested = offer.get("offers")
        if nested:
            flat.extend(o for o in (nested if isinstance(nested, list) else [nested]) if isinstance(o, dict))
    return flat


def _price(offers: list[dict]) -> tuple[str | None, str | None]:
    for offer in offers:
        spec = offer.get("priceSpecification")
        spec = spec[0] if isinstance(spec, list) and spec else spec
        for source in (offer, spec if isinstance(spec, dict) else {}):
            price = _text(source.get("price")) or _text(source.get("lowPrice"))
            if price:
                currency = _text(source.get("priceCurrency")) or _text(offer.get("priceCurrency"))
                return price, currency
    return None, None


def parse_price(price: str | None) -> float | None:
    """The number in a price string as written on the page ("1.299,00", "$1,299.00", "19.9")."""
    if not price:
        return None
    match = _NUMBER.search(price)
    if not match:
        return None
    digits = match.group(0).replace(" ", "").strip(".,")
    if "," in digits and "." in digits:
        # the later separator is the decimal one
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        digits = digits.replace("." if decimal == "," else ",", "").replace(",", ".")
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        digits = digits.replace(",", ".") if len(tail) != 3 and head.count(",") == 0 else digits.replace(",", "")
    try:
        return float(digits)
    except ValueError:
        return None


def _normalise(product: dict) -> dict[str, str | None] | None:
    offers = _offers(product)
    price, currency = _price(offers)
    sku = _text(product.get("sku")) or next((s for s in (_text(o.get("sku")) for o in offers) if s), None)
    gtin = next((g for g in (_text(product.get(k)) for k in _GTIN_KEYS) if g), None)
    if gtin is None:
        gtin = next((g for o in offers for g in (_text(o.get(k)) for k in _GTIN_KEYS) if g), None)
    normalised = {
        "name": _text(product.get("name")),
        "brand": _text(product.get("brand")) or _text(product.get("manufacturer")),
        "description": _text(product.get("description")),
        "price": price,
        "currency": currency.upper() if currency and len(currency) <= 4 else currency,
        "sku": sku,
        "gtin": gtin,
    }
    return normalised if any(normalised.values()) else None


def _listed_names(item_list: dict) -> list[str]:
    names = []
    elements = item_list.get("itemListElement") or []
    for element in elements if isinstance(elements, list) else [elements]:
        if not isinstance(element, dict):
            continue
        inner = element.get("item") if isinstance(element.get("item"), dict) else element
        name = _text(inner.get("name"))
        if name:
            names.append(name)
    return names
