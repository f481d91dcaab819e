"""HTML and Markdown translation (app/markup.py, app/markdown_doc.py).

A fake aligned translator "translates" each sentence by reversing its words and upper-casing them (a final
. ! or ? stays at the end) and returns the true word alignment, so where every tag must land is known exactly:
`<p>A <b>dog</b> runs.</p>` must give `<p>RUNS <b>DOG</b> A.</p>`. Its other modes return the text unchanged
(identity: the output must then be the input), drop the attention (an attention-free model), drop all but the
first word, or return nothing; whatever the mode, the guarantees below hold over the whole corpus. One test goes
through the real service with the tiny number-word model.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.alignment import Alignment, concatenate, words
from app.markup import MarkupError, monotone_links, project, translate_html, translate_markdown
from app.markup import Piece as MarkupPiece

SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)")
MODES = ["reverse", "identity", "no-attention", "first-word", "empty"]


def fake_sentence(sentence: str, mode: str) -> Alignment:
    source = words(sentence)
    tokens = [sentence[a:b] for a, b in source]
    end = ""
    if mode == "identity":
        order, out = list(range(len(tokens))), sentence
    else:
        if tokens and len(tokens[-1]) > 1 and tokens[-1][-1] in ".!?":
            end, tokens[-1] = tokens[-1][-1], tokens[-1][:-1]
        order = list(range(len(tokens)))[::-1]
        if mode == "first-word":
            order = order[:1]
        out = "" if mode == "empty" else " ".join(tokens[i].upper() for i in order) + end
    target = words(out)
    weights = [[1.0 if i == order[j] else 0.0 for i in range(len(source))] for j in range(len(target))]
    return Alignment(sentence, out, source, target, [] if mode == "no-attention" else weights)


def fake(mode: str = "reverse", log: list[str] | None = None):
    async def translate(texts: list[str]) -> list[Alignment]:
        if log is not None:
            log.extend(texts)
        out = []
        for text in texts:
            parts = SENTENCE_END.split(text)
            gaps = [""] + parts[1::2] + [""]
            out.append(concatenate([fake_sentence(s, mode) for s in parts[0::2]], gaps, gaps))
        return out
    return translate


def html(text: str, mode: str = "reverse") -> str:
    return asyncio.run(translate_html(text, fake(mode)))


def markdown(text: str, mode: str = "reverse") -> str:
    return asyncio.run(translate_markdown(text, fake(mode)))


# ---------------------------------------------------------------------------------------------------------
# The corpus: (name, input, the exact output with the reversing translator or None, identity gives the input)

CASES: list[tuple[str, str, str | None, bool]] = [
    ("bold", "<p>A <b>dog</b> runs.</p>", "<p>RUNS <b>DOG</b> A.</p>", True),
    ("fragment text", "Plain text with a <b>bold</b> word", "WORD <b>BOLD</b> A WITH TEXT PLAIN", True),
    ("nested inline", "<p>A <b>big <i>brown</i> dog</b> runs.</p>", "<p>RUNS <b>DOG <i>BROWN</i> BIG</b> A.</p>", True),
    ("link with attributes", '<p>Go to the <a href="/park?a=1&amp;b=2" class="x" data-n=\'3\'>city park</a> now.</p>',
     '<p>NOW <a href="/park?a=1&amp;b=2" class="x" data-n=\'3\'>PARK CITY</a> THE TO GO.</p>', True),
    ("link title translated", '<p>See <a href="/x" title="The big park">park</a>.</p>',
     '<p><a href="/x" title="PARK BIG THE">PARK</a> SEE.</p>', True),
    ("punctuation outside link", '<p>I saw the <a href="/p">park</a>.</p>',
     '<p><a href="/p">PARK</a> THE SAW I.</p>', True),
    ("two sentences", "<p>One <em>two</em> three. Four five!</p>", "<p>THREE <em>TWO</em> ONE. FIVE FOUR!</p>", True),
    ("list", "<ul>\n  <li>Red apples</li>\n  <li>Green <b>pears</b></li>\n</ul>",
     "<ul>\n  <li>APPLES RED</li>\n  <li><b>PEARS</b> GREEN</li>\n</ul>", True),
    ("table", "<table><tr><th>Name</th><th>Big age</th></tr><tr><td>Old <i>Tom</i></td><td>42 years</td></tr></table>",
     "<table><tr><th>NAME</th><th>AGE BIG</th></tr><tr><td><i>TOM</i> OLD</td><td>YEARS 42</td></tr></table>", True),
    ("br splits", "<p>First line here<br>Second line<br/>third</p>",
     "<p>HERE LINE FIRST<br>LINE SECOND<br/>THIRD</p>", True),
    ("br inside inline", "<p>A <b>bold<br>word</b> here</p>", "<p>HERE <b>WORD BOLD<br></b> A</p>", True),
    ("entities", "<p>Tom &amp; Jerry &copy; 2024 &#8212; the end&nbsp;now</p>",
     "<p>NOW END THE &#8212; 2024 &copy; JERRY &amp; TOM</p>", False),
    ("entity in attribute", '<img src="a.png" alt="Tom &amp; Jerry">', '<img src="a.png" alt="JERRY &amp; TOM">', True),
    ("comment between blocks", "<p>Hello world</p><!-- a comment --><p>Bye now</p>",
     "<p>WORLD HELLO</p><!-- a comment --><p>NOW BYE</p>", True),
    ("comment inside unit", "<p>Hello <!-- note --> big world</p>", "<p>WORLD <!-- note --> BIG HELLO</p>", True),
    ("script and style", '<style>p { color: red; }</style><p>Hi there</p><script>var s = "<b>no</b>";</script>',
     '<style>p { color: red; }</style><p>THERE HI</p><script>var s = "<b>no</b>";</script>', True),
    ("inline script", "<p>Hello <script>go(1)</script> world</p>", "<p><script>go(1)</script> WORLD HELLO</p>", True),
    ("empty span", "<p>Some <span></span>text here</p>", "<p>HERE <span></span>TEXT SOME</p>", True),
    ("empty elements", '<p><a id="top"></a>Hello world<i class="icon"></i></p>',
     '<p>WORLD<i class="icon"></i> <a id="top"></a>HELLO</p>', True),
    ("img alt title", '<p>A cat <img src="c.png" alt="A black cat" title="My cat"> sleeps.</p>',
     '<p><img src="c.png" alt="CAT BLACK A" title="CAT MY"> SLEEPS CAT A.</p>', True),
    ("translate no", '<p>Buy <span translate="no">Acme Widget</span> today</p>',
     '<p><span translate="no">Acme Widget</span> TODAY BUY</p>', True),
    ("notranslate block", '<div class="box notranslate"><p>Keep this</p></div><p>Change this</p>',
     '<div class="box notranslate"><p>Keep this</p></div><p>THIS CHANGE</p>', True),
    ("pre and code", "<pre>  keep   this\n  as is</pre><p>Run <code>ls -l</code> now</p>",
     "<pre>  keep   this\n  as is</pre><p><code>ls -l</code> NOW RUN</p>", True),
    ("kbd samp var", "<p>Press <kbd>Ctrl</kbd> then <samp>ok</samp> with <var>x</var></p>",
     "<p><samp>ok</samp> WITH <var>x</var> <kbd>Ctrl</kbd> THEN PRESS</p>", True),
    ("textarea placeholder", '<form><label>Your name <input name="n" placeholder="First name"></label>'
     '<textarea placeholder="Say more">keep me</textarea></form>',
     '<form><label>NAME <input name="n" placeholder="NAME FIRST"> YOUR</label>'
     '<textarea placeholder="MORE SAY">keep me</textarea></form>', True),
    ("full document",
     '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n  <title>My home page</title>\n'
     '  <meta name="description" content="A page about cats">\n  <!-- head comment -->\n</head>\n<body>\n'
     '  <h1>Hello cats</h1>\n  <p>Cats are nice.</p>\n</body>\n</html>\n',
     '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n  <title>PAGE HOME MY</title>\n'
     '  <meta name="description" content="CATS ABOUT PAGE A">\n  <!-- head comment -->\n</head>\n<body>\n'
     '  <h1>CATS HELLO</h1>\n  <p>NICE ARE CATS.</p>\n</body>\n</html>\n', True),
    ("headings and blockquote", "<h2>Big news</h2><blockquote>Some <cite>old</cite> words</blockquote>",
     "<h2>NEWS BIG</h2><blockquote>WORDS <cite>OLD</cite> SOME</blockquote>", True),
    ("definition list", "<dl><dt>Cat</dt><dd>A small animal</dd></dl>", "<dl><dt>CAT</dt><dd>ANIMAL SMALL A</dd></dl>",
     True),
    ("figure caption", '<figure><img src="x.png" alt="A view"><figcaption>The <b>old</b> town</figcaption></figure>',
     '<figure><img src="x.png" alt="VIEW A"><figcaption>TOWN <b>OLD</b> THE</figcaption></figure>', True),
    ("select options", "<select><option value=1>First choice</option><option value=2 selected>Second one</option>"
     "</select>", "<select><option value=1>CHOICE FIRST</option><option value=2 selected>ONE SECOND</option></select>",
     True),
    ("button", '<button type="submit" title="Send it">Send now</button>',
     '<button type="submit" title="IT SEND">NOW SEND</button>', True),
    ("div with text and blocks", "<div>Intro text<p>A paragraph</p>Outro text</div>",
     "<div>TEXT INTRO<p>PARAGRAPH A</p>TEXT OUTRO</div>", True),
    ("attribute quotes", """<p title='It is "quoted"' data-x="it's">Say <q class='a'>hi there</q></p>""",
     """<p title='"QUOTED" IS IT' data-x="it's"><q class='a'>THERE HI</q> SAY</p>""", False),
    ("unquoted attribute", "<p><img src=a.png alt=Sunset> Nice view</p>",
     '<p>VIEW <img src=a.png alt="SUNSET"> NICE</p>',
     False),
    ("unicode", "<p>Größe <b>über</b> alles — naïve café 日本</p>",
     "<p>日本 CAFÉ NAÏVE — ALLES <b>ÜBER</b> GRÖSSE</p>", True),
    ("sub sup small mark", "<p>H<sub>2</sub>O is <mark>very</mark> <small>wet</small> x<sup>2</sup></p>",
     "<p>X<sup>2</sup> <small>WET</small> <mark>VERY</mark> IS H<sub>2</sub>O</p>", True),
    ("numbers only", "<p>12 345</p><td>-</td>", "<p>12 345</p><td>-</td>", True),
    ("whitespace only", "<div>\n   \n</div>\n<p> </p>", "<div>\n   \n</div>\n<p> </p>", True),
    ("pretty printed", "<p>\n  A <b>dog</b>\n  runs.\n</p>", "<p>\n  RUNS <b>DOG</b> A.\n</p>", False),
    ("unclosed p and li", "<p>First para<p>Second <b>bold</b> para<ul><li>one item<li>two items</ul>",
     "<p>PARA FIRST<p>PARA <b>BOLD</b> SECOND<ul><li>ITEM ONE<li>ITEMS TWO</ul>", True),
    ("stray end tag", "<p>A dog</b> runs</p></span>", "<p>RUNS DOG A</p></span>", False),
    ("misnested", "<p>A <b>dog <i>runs</b> fast</i> now</p>", "<p>NOW FAST <b><i>RUNS</i> DOG</b> A</p>", False),
    ("unclosed inline", "<p>Some <b>bold text</p><p>next one</p>",
     "<p><b>TEXT BOLD</b> SOME</p><p>ONE NEXT</p>", False),
    ("inline around block", "<b>Bold <div>inner text</div> tail</b>", "<b>BOLD <div>TEXT INNER</div> TAIL</b>", True),
    ("self closing empty", "<p>A <span/>dog runs</p>", "<p>RUNS <span/>DOG A</p>", True),
    ("cdata and pi", "<p>Text <![CDATA[x < y]]> more</p><?php echo 1; ?>",
     "<p><![CDATA[x < y]]> MORE TEXT</p><?php echo 1; ?>",
     True),
    ("svg", '<p>Icon <svg viewBox="0 0 1 1"><text>Label</text></svg> here</p>',
     '<p><svg viewBox="0 0 1 1"><text>Label</text></svg> HERE ICON</p>', True),
    ("lt in text", "<p>If a &lt; b then go</p>", "<p>GO THEN B &lt; A IF</p>", True),
    ("raw ampersand", "<p>Fish & chips</p>", "<p>CHIPS &amp; FISH</p>", False),
    ("uppercase tags", '<P CLASS="x">A <B>dog</B></P>', '<P CLASS="x"><B>DOG</B> A</P>', True),
    ("nested lists", "<ul><li>Fruit<ul><li>Apple pie</li></ul></li></ul>",
     "<ul><li>FRUIT<ul><li>PIE APPLE</li></ul></li></ul>",
     True),
    ("label and input", '<label for="q">Search the site</label><input id="q" type="text" placeholder="Type here">',
     '<label for="q">SITE THE SEARCH</label><input id="q" type="text" placeholder="HERE TYPE">', True),
    ("abbr title", '<p>The <abbr title="World Health Organization">WHO</abbr> said so</p>',
     '<p>SO SAID <abbr title="ORGANIZATION HEALTH WORLD">WHO</abbr> THE</p>', True),
    ("code before period", "<p>Run <code>ls</code>. Then <img src=a.png alt=\"\">!</p>",
     "<p>RUN <code>ls</code>. THEN <img src=a.png alt=\"\">!</p>", True),
    ("wbr inside word", "<p>super<wbr>long name</p>", "<p>NAME SUPER<wbr>LONG</p>", True),
    ("unclosed comment at end", "<p>a b <!-- unclosed", "<p>B A <!-- unclosed", True),
    ("unterminated attribute", '<p>a <a href="x>y</a> z', '<p>A <a href="x>y</a> z', True),
    ("noscript", "<noscript><p>Enable scripts please</p></noscript>",
     "<noscript><p>PLEASE SCRIPTS ENABLE</p></noscript>",
     True),
]

SKIPPED_CONTENT = re.compile(
    r"<(script|style|code|pre|kbd|samp|var|textarea|svg)\b[^>]*>(.*?)</\1>"
    r"|<(\w+)\b[^>]*(?:translate=\"no\"|class=\"[^\"]*notranslate[^\"]*\")[^>]*>(.*?)</\3>", re.S | re.I)
TRANSLATED_ATTRIBUTES = {"alt", "title", "placeholder"}


class Collector(HTMLParser):
    """What the generic checks compare: start tags with their attributes, comments, declarations."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.starts: list[tuple[str, tuple]] = []
        self.comments: list[str] = []
        self.decls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        translated = TRANSLATED_ATTRIBUTES | ({"content"} if tag == "meta" else set())
        self.starts.append((tag, tuple((k, v) for k, v in attrs if k not in translated)))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_decl(self, decl: str) -> None:
        self.decls.append(decl)


def collect(text: str) -> Collector:
    collector = Collector()
    collector.feed(text)
    collector.close()
    return collector


BLOCKS = {"p", "div", "li", "ul", "ol", "table", "tr", "td", "th", "h1", "h2", "dl", "dt", "dd", "figure",
          "figcaption", "blockquote", "select", "option", "form", "label", "button", "html", "head", "body", "title",
          "pre", "noscript"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name, source, expected, stable", CASES, ids=[c[0] for c in CASES])
def test_guarantees(name: str, source: str, expected: str | None, stable: bool, mode: str) -> None:
    out = html(source, mode)
    before, after = collect(source), collect(out)
    assert Counter(after.starts) == Counter(before.starts)  # every tag as often, same attributes
    assert [t for t, _ in after.starts if t in BLOCKS] == [t for t, _ in before.starts if t in BLOCKS]
    assert after.comments == before.comments and after.decls == before.decls
    for found in SKIPPED_CONTENT.finditer(source):  # untranslated content byte for byte, in the same element
        name, content = found.group(1) or found.group(3), found.group(2) or found.group(4) or ""
        assert re.search(rf"<{name}\b[^>]*>{re.escape(content)}</{name}>", out, re.I), found.group(0)
    if mode == "identity" and stable:
        assert out == source
    if mode == "reverse" and expected is not None:
        assert out == expected


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_output_parses_with_lxml() -> None:
    lxml_html = pytest.importorskip("lxml.html")
    for _, source, _, _ in CASES:
        out = html(source)
        if out.strip():
            lxml_html.fragments_fromstring(out) if "<html" not in out.lower() else lxml_html.document_fromstring(out)


def test_inline_tag_kept_when_translation_is_short() -> None:
    assert html("<p>A <b>dog</b> runs <i>fast</i> <img src=x></p>", "first-word") == \
        "<p><b></b><i>FAST</i> <img src=x></p>"
    assert html("<p>A <b>dog</b> runs</p>", "empty") == "<p><b></b></p>"
    assert html("<p>A <b>dog</b> runs fast.</p>", "no-attention") == "<p>FAST <b>RUNS</b> DOG A.</p>"  # by position


def test_untranslated_units_are_not_sent() -> None:
    sent: list[str] = []
    asyncio.run(translate_html(
        "<p>A  dog\n runs</p><pre>x y</pre><p>123</p><code>a b</code><p translate=no>Keep</p>\n", fake(log=sent)))
    assert sent == ["A dog runs"]


def test_shifted_attention_is_pulled_back() -> None:
    """The real caption model: "Das" looks at "little" more than at "The" (row 0), as Bahdanau attention often
    does one word ahead; the argmax would bold "Das kleine", the Viterbi links bold "kleine" only."""
    source, target = "The little girl reads a book.", "Das kleine Mädchen liest ein Buch."
    weights = [[0.28, 0.58, 0.04, 0.03, 0.00, 0.02], [0.02, 0.94, 0.04, 0.00, 0.00, 0.00],
               [0.01, 0.13, 0.82, 0.01, 0.00, 0.01], [0.01, 0.01, 0.20, 0.73, 0.02, 0.01],
               [0.00, 0.00, 0.00, 0.06, 0.65, 0.14], [0.01, 0.00, 0.00, 0.06, 0.08, 0.60]]
    alignment = Alignment(source, target, words(source), words(target), weights)
    assert alignment.links[0] == 1 and monotone_links(alignment) == [0, 1, 2, 3, 4, 5]
    piece = MarkupPiece("<i>", "</i>", start=4, end=10)
    assert project(alignment, [piece], str) == "Das <i>kleine</i> Mädchen liest ein Buch."


def test_confident_reordering_is_kept() -> None:
    source, target = "I have seen the dog", "Ich habe den Hund gesehen"
    weights = [[0.9, 0.02, 0.02, 0.02, 0.02], [0.02, 0.9, 0.02, 0.02, 0.02], [0.02, 0.02, 0.05, 0.85, 0.05],
               [0.02, 0.02, 0.02, 0.04, 0.9], [0.02, 0.02, 0.9, 0.02, 0.02]]
    alignment = Alignment(source, target, words(source), words(target), weights)
    assert monotone_links(alignment) == [0, 1, 3, 4, 2]
    assert project(alignment, [MarkupPiece("<b>", "</b>", start=7, end=11)], str) == "Ich habe den Hund <b>gesehen</b>"


def test_punctuation_stays_outside_when_words_are_dropped() -> None:
    """The model dropped "on a" and put the sentence's period on "Fußball": the link still ends before it."""
    source, target = "Two men play soccer on a.", "Zwei Männer spielen Fußball."
    weights = [[0.9, 0, 0, 0, 0, 0], [0, 0.9, 0, 0, 0, 0], [0, 0, 0.9, 0, 0, 0], [0, 0, 0, 0.5, 0.3, 0.1]]
    alignment = Alignment(source, target, words(source), words(target), weights)
    link = MarkupPiece("[", "](/s)", start=13, end=19)
    code = MarkupPiece("`field`", start=24, end=24, void=True)
    assert project(alignment, [link, code], str) == "Zwei Männer spielen [Fußball](/s) `field`."


def test_alignment_of_another_text_falls_back_to_positions() -> None:
    async def normalizing(texts: list[str]) -> list[Alignment]:
        found = await fake()([t.lower() for t in texts])
        return found
    out = asyncio.run(translate_html("<p>A <b>Dog</b> runs <i>far</i>.</p>", normalizing))
    assert Counter(collect(out).starts) == Counter(collect("<p><b></b><i></i></p>").starts)
    assert re.sub(r"</?[bi]>", "", out) == "<p>FAR RUNS DOG A.</p>"


def test_too_deep_is_a_markup_error() -> None:
    with pytest.raises(MarkupError):
        html("<div>" * 300 + "deep" + "</div>" * 300)


def test_random_malformed_html_never_crashes() -> None:
    """Soup of tags, text and broken constructs: either translated with every start tag kept, or a MarkupError."""
    vocabulary = ["<b>", "</b>", "<i>", "</i>", "<p>", "</p>", "<br>", "<li>", "</ul>", "<ul>", "<a href='x'>", "</a>",
                  "word", " two words ", "&amp;", "&", "<", ">", "<!--", "-->", "<!-- c -->", "<td>", "<table>",
                  "</div>", "<div>", "<img alt='A pic'>", "<span/>", "<code>", "</code>", '"', "<![", "<!x", "</",
                  "<?", "\n", "Text.", "<b class=\"k\">", "<script>", "</script>"]
    rng = random.Random(7)
    for _ in range(300):
        source = "".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 25)))
        try:
            out = html(source)
        except MarkupError:
            continue
        assert Counter(collect(out).starts) == Counter(collect(source).starts), source


# ---------------------------------------------------------------------------------------------------------
# Markdown

MD_CASES: list[tuple[str, str, str]] = [
    ("paragraph emphasis", "A *big* dog runs.\n", "RUNS DOG *BIG* A.\n"),
    ("strong and link", "Two **young** men in the [city park](https://x.org/p?a=1 \"Title (x)\").\n",
     "[PARK CITY](https://x.org/p?a=1 \"Title (x)\") THE IN MEN **YOUNG** TWO.\n"),
    ("code span kept", "Run `ls -l` now please\n", "PLEASE `ls -l` NOW RUN\n"),
    ("heading", "# A *big* title ##\n\nSetext here\n---\n", "# TITLE *BIG* A ##\n\nHERE SETEXT\n---\n"),
    ("lists", "- Red apples\n- Green `pear`\n\n1. First step\n2. Second step\n",
     "- APPLES RED\n- GREEN `pear`\n\n1. STEP FIRST\n2. STEP SECOND\n"),
    ("table", "| Name | Age |\n|------|-----|\n| Old *Tom* | a \\| b |\n",
     "| NAME | AGE |\n|------|-----|\n| *TOM* OLD | B \\| A |\n"),
    ("code blocks", "Some text\n\n```python\nx = 'a b'\n```\n\n    indented code\n",
     "TEXT SOME\n\n```python\nx = 'a b'\n```\n\n    indented code\n"),
    ("image alt", "See ![A black cat](cat.png \"t\") here\n", "![CAT BLACK A](cat.png \"t\") HERE SEE\n"),
    ("image only", "![A black cat](cat.png)\n\n| ![Big dog](d.png) 42 |\n|---|\n",
     "![CAT BLACK A](cat.png)\n\n| ![DOG BIG](d.png) 42 |\n|---|\n"),
    ("reference links", "Read [the docs][d] or [faq] now.\n\n[d]: /docs\n[faq]: /faq\n",
     "[faq] NOW OR [DOCS THE][d] READ.\n\n[d]: /docs\n[faq]: /faq\n"),
    ("autolink", "Visit <https://example.com> today\n", "<https://example.com> TODAY VISIT\n"),
    ("blockquote lines", "> A dog runs\n> in the park.\n", "> PARK THE IN RUNS DOG A.\n"),
    ("hard break", "First line  \nsecond line\n", "LINE FIRST  \nLINE SECOND\n"),
    ("html block", "<div>\n<p>Hello <b>world</b></p>\n</div>\n\nPlain text\n",
     "<div>\n<p><b>WORLD</b> HELLO</p>\n</div>\n\nTEXT PLAIN\n"),
    ("inline html", "A <b>bold</b> move\n", "MOVE <b>BOLD</b> A\n"),
    ("front matter", "---\ntitle: Keep me\n---\nTranslate me\n", "---\ntitle: Keep me\n---\nME TRANSLATE\n"),
    ("escapes and entities", "Cats \\* dogs &amp; birds\n", "BIRDS & DOGS \\* CATS\n"),
    ("strikethrough", "An ~~old~~ new idea\n", "IDEA NEW ~~OLD~~ AN\n"),
    ("nested list item", "- Top item\n  - Inner item with *stress*\n",
     "- ITEM TOP\n  - *STRESS* WITH ITEM INNER\n"),
]


@pytest.mark.parametrize("name, source, expected", MD_CASES, ids=[c[0] for c in MD_CASES])
def test_markdown(name: str, source: str, expected: str) -> None:
    assert markdown(source) == expected


@pytest.mark.parametrize("name, source, expected", MD_CASES, ids=[c[0] for c in MD_CASES])
def test_markdown_identity_keeps_the_text(name: str, source: str, expected: str) -> None:
    if name not in ("blockquote lines", "escapes and entities"):
        assert markdown(source, "identity") == source
    for mode in MODES:
        markdown(source, mode)  # never raises, whatever the translation looks like


def test_markdown_escapes_model_output() -> None:
    async def star(texts: list[str]) -> list[Alignment]:
        out = []
        for text in texts:
            target = "1. *x* [y] | z"
            out.append(Alignment(text, target, words(text), words(target), []))
        return out
    assert asyncio.run(translate_markdown("Hello there world\n", star)) == "1\\. \\*x\\* \\[y\\] | z\n"
    assert asyncio.run(translate_markdown("| a b |\n|---|\n| c |\n", star)).splitlines()[0] == \
        "| 1. \\*x\\* \\[y\\] \\| z |"


def test_random_markdown_keeps_code() -> None:
    """Soup of Markdown constructs: never an error, code blocks and spans come back as written."""
    vocabulary = ["word ", "two words ", "*", "**", "_", "`code`", "[", "]", "(/url)", "![alt text](i.png)", "\n",
                  "\n\n", "# ", "> ", "- ", "1. ", "| a | b |\n|---|---|\n", "<b>", "</b>", "\\*", "&amp;", "  \n",
                  "\n\n```\nfenced code\n```\n\n", "~~", "<https://x.org>", "[ref]", "\n[ref]: /r\n", "Text."]
    rng = random.Random(3)
    for _ in range(200):
        source = "".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 20)))
        out = markdown(source)
        assert out.count("```\nfenced code\n```") == source.count("```\nfenced code\n```"), source
        assert out.count("`code`") == source.count("`code`"), source
        assert markdown(source, "identity").count("`") == source.count("`"), source


def test_markdown_crlf() -> None:
    assert markdown("# Big title\r\n\r\nSome `x` text\r\n") == "# TITLE BIG\r\n\r\n`x` TEXT SOME\r\n"


# ---------------------------------------------------------------------------------------------------------
# The real service, in process, with the tiny number-word model ("one two three" -> "drei zwei eins")

def test_real_service_keeps_one_bold(served_models_dir: Path) -> None:
    from app.metrics import Metrics
    from app.registry import ModelRegistry
    from app.schemas import DecodeOptions
    from app.service import TranslationService
    from app.settings import Settings

    settings = Settings(models_dir=served_models_dir, threads=1)
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics)
    registry.load()
    try:
        service = TranslationService(registry, settings, metrics)
        route = registry.route("en", "de")

        async def translate(texts: list[str]) -> list[Alignment]:
            return await service.translate_aligned(texts, route, DecodeOptions(beam_size=1))

        async def both() -> tuple[str, str]:
            return (await translate_html("<p>one <b>two</b> three</p>", translate),
                    await translate_markdown("one **two** three\n", translate))

        out, markdown_out = asyncio.run(both())
    finally:
        registry.close()
    assert out.count("<b>") == 1 and out.count("</b>") == 1 and out.startswith("<p>") and out.endswith("</p>")
    assert re.sub(r"</?b>", "", out) == "<p>drei zwei eins</p>", out
    assert "<b>zwei</b>" in out
    assert markdown_out.count("**") == 2 and markdown_out.replace("**", "") == "drei zwei eins\n", markdown_out
