"""Software-message catalogs (gettext `.mo` / `.po`) as parallel text: `rnnmt prepare --corpus gettext`.

Every program translated with gettext ships one catalog per language, `<locale dir>/<lang>/LC_MESSAGES/<domain>.mo`,
whose entries pair an English message (msgid) with its translation (msgstr). A Debian system with a few hundred
packages holds tens of thousands of them in German, French, Czech... For a pair with English on one side the pairs
are (msgid, msgstr); for two other languages, the messages of one domain are joined on their English msgid.

Software messages are not prose, so a message is kept only when it reads as text: one line, no format
placeholders (`%s`, `{0}`), translated (not empty, not a copy), at most MAX_WORDS words, with its keyboard
accelerator (`_File`, `&Open`) removed. Catalogs are parsed with polib; one that cannot be read is skipped
and counted.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polib

from model.errors import DataError

log = logging.getLogger(__name__)

LOCALE_DIRS = ("/usr/share/locale", "/usr/share/locale-langpack")  # RNNMT_LOCALE_DIRS overrides (os.pathsep)
MAX_WORDS = 60
_PLACEHOLDER = re.compile(r"%(\d+\$)?[-#0 +']*(\d+|\*)?(\.\d+)?(hh|h|ll|l|L|q|j|z|t)?[a-zA-Z%]|\{[^{}\s]*\}|\$\{?\w")
_ACCELERATOR = re.compile(r"(?<![\w_&])[_&](?=\w)")  # `_File`, `Save _As`, `&Open`: one per message
_LETTER = re.compile(r"[^\W\d_]")


def locale_dirs() -> list[Path]:
    value = os.environ.get("RNNMT_LOCALE_DIRS")
    return [Path(p) for p in (value.split(os.pathsep) if value else LOCALE_DIRS) if p]


def language_of(folder_name: str) -> str:
    """'de' for the locale folders de, de_DE, de_DE.UTF-8; '' for variants such as sr@latin (another script)."""
    return "" if "@" in folder_name else re.split(r"[_.]", folder_name, maxsplit=1)[0]


def clean(message: str) -> str | None:
    """The message as one line of text, or None when it is not one (see the module doc)."""
    text = message.strip()
    if not text or "\n" in text or "\t" in text or "  " in text or _PLACEHOLDER.search(text):
        return None
    if len(_ACCELERATOR.findall(text)) == 1:
        text = _ACCELERATOR.sub("", text)
    if not _LETTER.search(text) or len(text.split()) > MAX_WORDS:
        return None
    return text


@dataclass
class CatalogReport:
    catalogs: int = 0
    unreadable: list[str] = field(default_factory=list)


def read_catalog(path: Path) -> dict[str, str]:
    """{English msgid: translation} of one .mo or .po file, fuzzy and untranslated entries left out."""
    try:
        catalog = polib.mofile(str(path)) if path.suffix == ".mo" else polib.pofile(str(path))
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # polib raises these (IOError for bad magic numbers)
        raise DataError(f"{path}: not a readable gettext catalog ({exc})") from None
    messages: dict[str, str] = {}
    for entry in catalog:
        if entry.obsolete or "fuzzy" in entry.flags or not entry.msgid:
            continue
        translation = entry.msgstr or (entry.msgstr_plural.get(0, "") if entry.msgid_plural else "")
        if translation:
            messages.setdefault(entry.msgid, translation)
    return messages


def catalog_files(dirs: Iterable[Path], lang: str) -> dict[str, Path]:
    """{domain: catalog path} for one language; the first locale dir holding a domain wins."""
    found: dict[str, Path] = {}
    for base in dirs:
        if not base.is_dir():
            continue
        for folder in sorted(base.iterdir()):
            if language_of(folder.name) != lang:
                continue
            for path in sorted((folder / "LC_MESSAGES").glob("*.mo")):
                found.setdefault(path.stem, path)
    return found


def pairs(langs: tuple[str, str], dirs: Iterable[Path] | None = None,
          report: CatalogReport | None = None) -> Iterator[tuple[str, str]]:
    """(source, target) message pairs from every catalog of the pair's languages, in a fixed order."""
    dirs = list(locale_dirs() if dirs is None else dirs)
    report = report if report is not None else CatalogReport()
    others = [lang for lang in langs if lang != "en"]
    if not others:
        raise DataError("gettext catalogs translate from English: a pair needs a language other than English")
    files = {lang: catalog_files(dirs, lang) for lang in others}
    domains = sorted(set.intersection(*(set(found) for found in files.values())))
    if not domains:
        where = ", ".join(str(d) for d in dirs)
        raise DataError(f"no gettext catalogs for {'-'.join(langs)} under {where} (set RNNMT_LOCALE_DIRS)")
    for domain in domains:
        by_lang: dict[str, dict[str, str]] = {}  # English is the msgid itself
        try:
            for lang in others:
                by_lang[lang] = read_catalog(files[lang][domain])
        except DataError as exc:
            report.unreadable.append(str(exc))
            log.warning("%s", exc)
            continue
        report.catalogs += 1
        first = by_lang[others[0]]
        for msgid in first:
            texts = [msgid if lang == "en" else by_lang[lang].get(msgid, "") for lang in langs]
            cleaned = [clean(text) for text in texts]
            if cleaned[0] and cleaned[1] and cleaned[0] != cleaned[1]:
                yield cleaned[0], cleaned[1]


def file_pairs(path: Path, langs: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """One catalog file given as a corpus: English msgids and the translations into the pair's other language."""
    if "en" not in langs or langs[0] == langs[1]:
        raise DataError(f"{path}: a gettext catalog pairs English with one language; the pair is {'-'.join(langs)}")
    flip = langs[0] != "en"
    for msgid, translation in read_catalog(path).items():
        source, target = clean(msgid), clean(translation)
        if source and target and source != target:
            yield (target, source) if flip else (source, target)
