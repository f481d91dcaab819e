"""app.protect: protected spans come out byte-identical, exactly once, whatever an (aligned) translator does to
their stand-ins; glossary terms replace the translation of their source terms; a text with nothing to protect
is the identity. The translator here is a fake: deterministic, no model, with the true word alignment."""

from __future__ import annotations

import asyncio
import re

import pytest

from app.alignment import Alignment, words
from app.protect import STAND_IN, Protected, Restored, find_spans, protect, restore, translate_protected

DNT = ["Firefox", "RNNMT", "Visual Studio Code", "Acme Rocket"]
CORPUS = [  # (text, the spans it protects, in order); all of it our own writing
    ("Open https://example.com/search?q=red+bike&page=2 in your browser.",
     ["https://example.com/search?q=red+bike&page=2"]),
    ("See the docs (https://docs.example.org/guide/intro) before you start.", ["https://docs.example.org/guide/intro"]),
    ("Visit www.example.de for more pictures.", ["www.example.de"]),
    ("The file is at http://files.example.net/a/b.tar.gz, download it.", ["http://files.example.net/a/b.tar.gz"]),
    ("Go to https://example.com/path_(info) now!", ["https://example.com/path_(info)"]),
    ("Write to support@example.com if the bike is broken.", ["support@example.com"]),
    ("Please contact jane.doe+news@mail.example.co.uk today.", ["jane.doe+news@mail.example.co.uk"]),
    ("My address is bob_smith@example.org.", ["bob_smith@example.org"]),
    ("Two dogs run across 3 fields.", ["3"]),
    ("The man sold 12 apples and 7 pears.", ["12", "7"]),
    ("The water is 3.5 meters deep.", ["3.5"]),
    ("In Germany one writes 3,5 instead.", ["3,5"]),
    ("About 1,000 people watch the game.", ["1,000"]),
    ("The race starts at 10:30 in the morning.", ["10:30"]),
    ("A ticket costs 1,250.75 euros.", ["1,250.75"]),
    ("The year 2007 was a good year.", ["2007"]),
    ("Hello {name}, welcome back!", ["{name}"]),
    ("{user} is standing next to a red bike.", ["{user}"]),
    ("You have {count} new messages from {sender}.", ["{count}", "{sender}"]),
    ("The result is {0} and {1}.", ["{0}", "{1}"]),
    ("Dear {{first_name}}, your order has shipped.", ["{{first_name}}"]),
    ("There are {{ count }} dogs in the park.", ["{{ count }}"]),
    ("%s is sitting on a bench in the park.", ["%s"]),
    ("The boy with the number %d runs across the grass.", ["%d"]),
    ("%1$s sent %2$s a picture of a dog.", ["%1$s", "%2$s"]),
    ("Welcome, %(user)s! You have %(count)d new photos.", ["%(user)s", "%(count)d"]),
    ("The value is %.2f percent.", ["%.2f"]),
    ("A woman reads a book about $HOME at the beach.", ["$HOME"]),
    ("Set ${PATH} before you run the program.", ["${PATH}"]),
    ("The variable $USER_NAME is empty.", ["$USER_NAME"]),
    ("Run `git push` to upload the pictures.", ["`git push`"]),
    ("A man types `ls -la /home` on a laptop.", ["`ls -la /home`"]),
    ("Call `render(page={n})` after the update.", ["`render(page={n})`"]),
    ("The dog likes `ball()` more than sticks.", ["`ball()`"]),
    ("A man in a Firefox shirt rides a bike.", ["Firefox"]),
    ("The RNNMT server translates the text.", ["RNNMT"]),
    ("She opens Visual Studio Code on her laptop.", ["Visual Studio Code"]),
    ("A child plays with an Acme Rocket in the snow.", ["Acme Rocket"]),
    ("Firefox and RNNMT run on the same computer.", ["Firefox", "RNNMT"]),
    ("Send {count} photos to info@example.com by %s.", ["{count}", "info@example.com", "%s"]),
    ("Open https://example.com/a?id=42 and enter 42.", ["https://example.com/a?id=42", "42"]),
    ("The user %(name)s has 3 dogs and lives in ${CITY}.", ["%(name)s", "3", "${CITY}"]),
    ("Run `make test` with $JOBS jobs on Firefox.", ["`make test`", "$JOBS", "Firefox"]),
    ("{greeting} {name}!", ["{greeting}", "{name}"]),
    ("https://example.com", ["https://example.com"]),
    ("{name}", ["{name}"]),
    ("42", ["42"]),
    ("A man holds a sign that says {name}.", ["{name}"]),
    ("Two men carry %s across the street.", ["%s"]),
    ("A girl writes to info@example.org from a cafe.", ["info@example.org"]),
    ("A little girl holds a balloon for $USER.", ["$USER"]),
    ("A woman takes a picture of {{landmark}} with her camera.", ["{{landmark}}"]),
    ("A surfer rides a wave near {beach} at 6:45.", ["{beach}", "6:45"]),
    ("The shop at www.shop.example.com sells 250 bikes a year.", ["www.shop.example.com", "250"]),
    ("A group of 5 people stand outside {shop} in the rain.", ["5", "{shop}"]),
    ("Press `Ctrl+C` to stop %s.", ["`Ctrl+C`", "%s"]),
    ("The dog named {dog} catches a ball.\nThe cat sleeps.", ["{dog}"]),
    ("First sentence with {a}. Second sentence with {b}.", ["{a}", "{b}"]),
    ("A man in New York City waits for {friend}.", ["{friend}"]),
    ("The report for file{n}.txt is ready.", ["{n}"]),
    ("Her e-mail, anna@example.com, is new; call 555 1234.", ["anna@example.com", "555", "1234"]),
    ("An old man feeds 2 birds with {name} in the park.", ["2", "{name}"]),
    ("Der Preis ist 3,50 Euro für %s.", ["3,50", "%s"]),
    ("  {name}  sits   on a bench.  ", ["{name}"]),
    ("Save it as {dir}{name}.txt or %s%d in $HOME/{sub}.", ["{dir}{name}", "%s%d", "$HOME", "{sub}"]),
]
PLAIN = ["A man rides a red bike down the street.", "Two dogs play in the snow. A girl reads a book.",
         "  Spaces  stay  as  they  are.  ", "Line one\nline two", "New York is big.", "Nothing: fully sure!", "",
         "A sign says ONE-WAY.", "The price is high (very high)."]
DICTIONARY = {"a": "ein", "man": "Mann", "rides": "fährt", "red": "rotes", "bike": "Fahrrad", "the": "die",
              "dog": "Hund", "dogs": "Hunde", "girl": "Mädchen", "fire": "Feuer", "truck": "Wagen", "two": "zwei",
              "play": "spielen", "snow": "Schnee", "reads": "liest", "book": "Buch", "and": "und"}
MODES = ["copy", "reverse", "drop", "mangle", "reverse-mangle", "reverse-drop", "duplicate", "shift", "empty"]
PUNCTUATION = ".,;:!?()"


def fake_alignment(source: str, mode: str = "copy") -> Alignment:
    """A deterministic 'translation' with its true alignment. Words go through DICTIONARY (punctuation kept);
    the stand-in "New York" moves as one unit. Modes: copy (same order), reverse (order reversed), drop
    (stand-ins and numbers left out), mangle (New York -> Nueva Yorka, each digit + 1), duplicate (stand-ins
    written twice), shift (each word's attention on the next source word, as the real model's often is),
    empty (no output), same (copy without the dictionary); "reverse-" combines."""
    spans = words(source)
    units: list[list[int]] = []
    for i, (a, b) in enumerate(spans):
        previous = source[slice(*spans[units[-1][0]])] if units and len(units[-1]) == 1 else ""
        if previous.lstrip(PUNCTUATION) == "New" and source[a:b].strip(PUNCTUATION) == "York":
            units[-1].append(i)
        else:
            units.append([i])
    if "reverse" in mode:
        units.reverse()
    out: list[str] = []
    origin: list[int] = []
    for unit in [] if mode == "empty" else units:
        rendered = []
        for i in unit:
            word = source[slice(*spans[i])]
            core = word.strip(PUNCTUATION)
            special = core in ("New", "York") or re.fullmatch(r"[\d.,:]+", core) is not None
            if special and "drop" in mode:
                continue
            if special and "mangle" in mode:
                core = {"New": "Nueva", "York": "Yorka"}.get(core) or re.sub(r"\d", lambda m: str(
                    (int(m.group()) + 1) % 10), core)
            translated = core if mode == "same" else DICTIONARY.get(core.lower(), core)
            rendered.append((word.replace(word.strip(PUNCTUATION), translated, 1) if core else word, i))
        twice = mode == "duplicate" and len(unit) == 2  # the stand-in written twice
        for new, i in rendered * (2 if twice else 1):
            out.append(new)
            origin.append(i)
    target = " ".join(out)
    shift = 1 if mode == "shift" else 0
    weights = [[1.0 if i == min(o + shift, len(spans) - 1) else 0.0 for i in range(len(spans))] for o in origin]
    return Alignment(source, target, spans, words(target), weights)


def fake_translator(mode: str, calls: list[list[str]] | None = None):
    async def translate(texts: list[str]) -> list[Alignment]:
        if calls is not None:
            calls.append(list(texts))
        return [fake_alignment(text, mode) for text in texts]
    return translate


def whole(text: str) -> str:
    return (r"(?<!\w)" if text[:1].isalnum() else "") + re.escape(text) + (r"(?!\w)" if text[-1:].isalnum() else "")


def assert_survives(restored: Restored, protected: Protected) -> None:
    """Each slot's replacement is in the text byte-identical, once per slot; no stray copy of a protected text
    or of the stand-in is left; the unplaced slots are the end of the text."""
    rest, slots = restored.text, protected.slots
    for slot in sorted(slots, key=lambda s: -len(s.replacement)):
        assert slot.replacement in rest, (slot, restored)
        rest = rest.replace(slot.replacement, "\0", 1)
    for slot in slots:
        if slot.kind != "glossary":
            assert not re.search(whole(slot.text), rest), (slot, restored)
    assert STAND_IN not in rest or STAND_IN in protected.text
    if restored.unplaced:
        assert restored.text.endswith(" ".join(s.replacement for s in restored.unplaced))


def test_corpus_covers_every_kind() -> None:
    assert len(CORPUS) >= 60
    kinds = {s.kind for text, _ in CORPUS for s in protect(text, DNT).slots}
    assert kinds == {"url", "email", "number", "placeholder", "variable", "code", "term"}


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_finds_the_spans(text: str, expected: list[str]) -> None:
    protected = protect(text, DNT)
    assert [s.text for s in protected.slots] == expected
    assert [text[start:end] for start, end, _, _ in find_spans(text, DNT)] == expected
    for slot in protected.slots:
        stand_in = protected.source[slot.start:slot.end]
        assert stand_in == (slot.text if slot.kind == "number" else STAND_IN if slot.has_stand_in else "")
        assert slot.replacement == slot.text


@pytest.mark.parametrize("text", PLAIN)
def test_nothing_to_protect_is_the_identity(text: str) -> None:
    for glossary in (None, {}, {"cat": "Katze"}):
        protected = protect(text, glossary=glossary)
        assert protected.source == text and protected.slots == []
        alignment = fake_alignment(text, "reverse")
        assert restore(protected, alignment) == Restored(alignment.target, [])


@pytest.mark.parametrize("glossary", [None, {}])
def test_translate_protected_without_spans_sends_and_returns_the_texts_unchanged(glossary: dict | None) -> None:
    calls: list[list[str]] = []
    texts = [t for t in PLAIN if t.strip()]
    out = asyncio.run(translate_protected(texts, fake_translator("reverse", calls), glossary=glossary))
    assert calls == [texts]
    assert [r.text for r in out] == [fake_alignment(t, "reverse").target for t in texts]
    assert all(r.unplaced == [] for r in out)


@pytest.mark.parametrize("stand_in", [STAND_IN, None])
@pytest.mark.parametrize("text", [text for text, _ in CORPUS])
def test_a_translator_that_copies_gets_the_text_back(text: str, stand_in: str | None) -> None:
    """With stand-ins, exactly (but for runs of spaces, which the fake does not keep); with the spans removed,
    each goes back next to the same words (a text that is nothing but slots is not translated at all)."""
    protected = protect(text, DNT, stand_in=stand_in)
    restored = restore(protected, fake_alignment(protected.source, "same"))
    assert_survives(restored, protected)
    if stand_in:
        assert restored.text == " ".join(text.split())
    elif any(c.isalpha() for c in protected.source):
        assert restored.text.split() == text.split()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stand_in", [STAND_IN, None])
def test_every_span_survives_whatever_the_translator_does(mode: str, stand_in: str | None) -> None:
    for text, _ in CORPUS:
        protected = protect(text, DNT, stand_in=stand_in)
        restored = restore(protected, fake_alignment(protected.source, mode))
        assert_survives(restored, protected)
        if mode == "empty":
            assert restored.unplaced == protected.slots
            assert restored.text == " ".join(s.replacement for s in protected.slots)


@pytest.mark.parametrize("mode", MODES)
def test_translate_protected_survival(mode: str) -> None:
    calls: list[list[str]] = []
    texts = [text for text, _ in CORPUS]
    out = asyncio.run(translate_protected(texts, fake_translator(mode, calls), DNT))
    for text, restored in zip(texts, out):
        assert_survives(restored, protect(text, DNT))
    bare = ["{greeting} {name}!", "https://example.com", "{name}", "42"]  # nothing to translate around them
    assert not any(b in call for b in bare for call in calls)
    assert [out[texts.index(b)].text for b in bare] == bare
    if mode in ("copy", "reverse", "shift"):
        assert len(calls) == 1  # every stand-in copied: one pass
    else:  # the texts whose stand-ins did not come through, again with the spans removed
        assert len(calls) == 2 and all(STAND_IN not in sent or "New York City" in sent for sent in calls[1])


def test_reordered_spans_follow_their_words() -> None:
    text = "You have {count} new messages from {sender}."
    out = asyncio.run(translate_protected([text], fake_translator("reverse"), DNT))[0]
    assert out == Restored("{sender}. from messages new {count} have You", [])
    protected = protect(text, stand_in=None)
    assert restore(protected, fake_alignment(protected.source, "reverse")).text == \
        "from {sender}. messages new have {count} You"


def test_mangled_and_duplicated_stand_ins() -> None:
    protected = protect("Send {count} photos to info@example.com by 3.5.")
    mangled = fake_alignment(protected.source, "mangle")
    assert mangled.target == "Send Nueva Yorka photos to Nueva Yorka by 4.6."
    assert restore(protected, mangled).text == "Send {count} photos to info@example.com by 3.5."
    twice = fake_alignment(protected.source, "duplicate")
    assert twice.target == "Send New York New York photos to New York New York by 3.5."
    assert restore(protected, twice).text == "Send {count} photos to info@example.com by 3.5."


def test_dropped_spans_go_next_to_their_neighbours() -> None:
    protected = protect("The man sold 12 apples and 7 pears at {shop}.")
    dropped = fake_alignment(protected.source, "drop")
    assert dropped.target == "die Mann sold apples und pears at"  # "York." went with its period
    assert restore(protected, dropped) == Restored("die Mann sold 12 apples und 7 pears at {shop}", [])


def test_unplaceable_spans_are_appended_and_flagged() -> None:
    protected = protect("Hello {name}, you have 3 messages.")
    nowhere = Alignment(protected.source, "Hallo.", words(protected.source), words("Hallo."), [[0.0] * 6])
    restored = restore(protected, nowhere)
    assert restored == Restored("Hallo. {name} 3", protected.slots)


def test_a_text_with_the_stand_in_removes_the_spans_and_keeps_its_own() -> None:
    protected = protect("A man in New York City waits for {friend}.")
    assert protected.source == "A man in New York City waits for." and not protected.slots[0].has_stand_in
    restored = restore(protected, fake_alignment(protected.source, "copy"))
    assert restored.text == "ein Mann in New York City waits for {friend}."


def test_sentences_and_lines() -> None:
    texts = ["The dog named {dog} catches a ball.\nThe cat sleeps.", "First with {a}. Second with {b}."]
    out = asyncio.run(translate_protected(texts, fake_translator("copy")))
    assert [r.text for r in out] == ["die Hund named {dog} catches ein ball. die cat sleeps.",
                                     "First with {a}. Second with {b}."]


GLOSSARY = {"bike": "Velo", "dog": "Köter", "fire truck": "Löschfahrzeug"}
GLOSSARY_CASES = [
    ("A man rides a red bike.", "ein Mann fährt ein rotes Velo."),
    ("The dog and the bike.", "die Köter und die Velo."),
    ("Bike and DOG.", "Velo und Köter."),
    ("A red fire truck.", "ein rotes Löschfahrzeug."),
    ("Two dogs play in the snow.", "zwei Hunde spielen in die Schnee."),  # "dogs" is not "dog"
    ("A dog reads {title} in the snow at 3.", "ein Köter liest {title} in die Schnee at 3."),
]


@pytest.mark.parametrize(("text", "expected"), GLOSSARY_CASES)
def test_glossary_replaces_the_translation_of_the_term(text: str, expected: str) -> None:
    out = asyncio.run(translate_protected([text], fake_translator("copy"), glossary=GLOSSARY))[0]
    assert out == Restored(expected, [])
    reordered = asyncio.run(translate_protected([text], fake_translator("reverse"), glossary=GLOSSARY))[0]
    assert sorted(w.strip(".") for w in reordered.text.split()) == sorted(w.strip(".") for w in expected.split())


@pytest.mark.parametrize("mode", ["shift", "drop", "empty", "reverse-mangle"])
def test_glossary_terms_always_appear(mode: str) -> None:
    texts = [text for text, _ in GLOSSARY_CASES]
    for text, restored in zip(texts, asyncio.run(translate_protected(texts, fake_translator(mode), DNT, GLOSSARY))):
        protected = protect(text, DNT, GLOSSARY)
        assert_survives(restored, protected)
        for slot in protected.slots:
            if slot.kind == "glossary":
                assert re.search(whole(slot.replacement), restored.text)


def test_glossary_term_the_model_already_wrote_is_kept() -> None:
    protected = protect("A dog.", glossary={"dog": "Hund"})
    assert protected.source == "A dog." and protected.slots[0].kind == "glossary"
    assert restore(protected, fake_alignment(protected.source, "reverse")).text == "Hund. ein"


def test_overlaps_and_priorities() -> None:
    text = "Mail firefox@example.com about Firefox, {n} and `x = {y}` at https://x.example/{z}."
    assert [(kind, text[a:b]) for a, b, kind, _ in find_spans(text, ["Firefox", "example"])] == [
        ("email", "firefox@example.com"), ("term", "Firefox"), ("placeholder", "{n}"), ("code", "`x = {y}`"),
        ("url", "https://x.example/{z}")]
    assert [s.text for s in protect("Up 50% or 3.5% in v2 and 2nd", numbers=False).slots] == []
    assert [s.text for s in protect("Up 50% or 3.5% in v2 and 2nd").slots] == ["50", "3.5"]
    assert protect("x", do_not_translate=["", " "], glossary={"": "y", "x": ""}) == Protected("x", "x", [])


def test_numbers_the_model_broke_or_repeated() -> None:
    protected = protect("The number 55 on it and 3 dogs.")
    assert protected.source == protected.text and [s.text for s in protected.slots] == ["55", "3"]
    source_words = words(protected.source)
    target = "die Nummer 5 5 darauf und 3 Hunde 3."  # "55" in two pieces, "3" twice
    links = [0, 1, 2, 2, 3, 5, 6, 7, 7]  # target word -> source word, as the model's attention has it
    weights = [[1.0 if i == link else 0.0 for i in range(len(source_words))] for link in links]
    restored = restore(protected, Alignment(protected.source, target, source_words, words(target), weights))
    assert restored == Restored("die Nummer 55 darauf und 3 Hunde.", [])
    assert [s.text for s in protect("3 dogs and 3.5 m").slots] == ["3", "3.5"]
    copied = restore(protect("3 dogs and 3.5 m"), fake_alignment("3 dogs and 3.5 m", "reverse"))
    assert copied == Restored("m 3.5 und Hunde 3", [])
