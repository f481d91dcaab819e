"""TMX (Translation Memory eXchange, 1.4b; 1.1's `lang` too) read as (source, target) pairs, streamed with lxml.

Each `<tu>` holds one `<tuv>` per language with its text in `<seg>`. Languages match by primary subtag, case
ignored: `de-DE`, `DE`, `de_AT` are all `de`. A segment's text keeps what its `<hi>` elements highlight and drops
the native codes of `<bpt>`, `<ept>`, `<it>`, `<ph>` and `<ut>` (formatting markup, e.g. `<b>`); whitespace runs
become one space, so a segment is always one line. Units without both languages are skipped and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from model.errors import DataError
from training.formats import open_binary

log = logging.getLogger(__name__)

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TEXT_ELEMENTS = {"hi"}  # inline elements whose content is text; the others' content is markup


def _local(tag: object) -> str:
    """An element's name without its namespace; '' for comments, processing instructions and entities."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def primary_language(code: str) -> str:
    """'de-DE' -> 'de', 'EN_us' -> 'en'."""
    return code.replace("_", "-").split("-", 1)[0].strip().lower()


def segment_text(seg: etree._Element) -> str:
    """The text of a <seg>, inline markup dropped, whitespace collapsed."""
    parts: list[str] = []

    def walk(element: etree._Element) -> None:
        parts.append(element.text or "")
        for child in element:
            if _local(child.tag) in TEXT_ELEMENTS:
                walk(child)
            parts.append(child.tail or "")

    walk(seg)
    return " ".join("".join(parts).split())


def _unit_texts(unit: etree._Element) -> dict[str, str]:
    """Primary language -> segment text of one <tu> (the first <tuv> of each language)."""
    texts: dict[str, str] = {}
    for tuv in unit:
        if _local(tuv.tag) != "tuv":
            continue
        lang = primary_language(tuv.get(XML_LANG) or tuv.get("lang") or "")
        seg = next((child for child in tuv if _local(child.tag) == "seg"), None)
        if lang and seg is not None and lang not in texts:
            texts[lang] = segment_text(seg)
    return texts


def read_tmx(path: Path, langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(source, target) segment pairs of every <tu> that has both languages, in file order."""
    src_lang, tgt_lang = (primary_language(lang) for lang in langs)
    pairs = 0
    seen: Counter[str] = Counter()
    units = 0
    with open_binary(path) as handle:
        events = etree.iterparse(handle, events=("end",), tag="{*}tu", resolve_entities=False, no_network=True,
                                 load_dtd=False, huge_tree=True, recover=False)
        try:
            for _, unit in events:
                units += 1
                texts = _unit_texts(unit)
                seen.update(texts.keys())
                unit.clear(keep_tail=False)
                while unit.getprevious() is not None:  # free the units already read
                    del unit.getparent()[0]
                if src_lang in texts and tgt_lang in texts:
                    pairs += 1
                    yield texts[src_lang], texts[tgt_lang]
        except etree.XMLSyntaxError as exc:
            raise DataError(f"{path} is not valid TMX (XML): {exc}") from None
        except (OSError, EOFError, ValueError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
    if pairs == 0:
        found = ", ".join(f"{lang} ({n})" for lang, n in seen.most_common(8)) or "none"
        raise DataError(f"{path}: no translation unit has both {src_lang} and {tgt_lang} "
                        f"({units} units; languages found: {found})")
    if pairs < units:
        log.info("%s: %d of %d units lack %s or %s and were skipped", path, units - pairs, units, src_lang, tgt_lang)
