"""The reply as Markdown: article text renders as text, links are safe and point at the sentence."""

from __future__ import annotations

import re
from dataclasses import replace

from qa import Library
from qa.answer import Answer, Composer
from qa.reply import escape_markdown, fragment_link, safe_url, to_markdown


def test_article_text_is_escaped_so_it_renders_as_text() -> None:
    hostile = '<script>alert(1)</script> <img src=x onerror="alert(2)"> [click](javascript:alert(3)) **bold** $$x$$'
    escaped = escape_markdown(hostile)
    assert "<" not in escaped and ">" not in escaped
    assert "](" not in escaped and "**" not in escaped and "$$" not in escaped
    assert re.sub(r"\\(.)", r"\1", escaped.replace("&lt;", "<").replace("&gt;", ">")) == hostile
    assert escape_markdown("1. not a list\n- nor this") == "1\\. not a list\n\\- nor this"
    assert "https://" not in escape_markdown("see https://evil.example") and "www." not in escape_markdown("www.x.org")


def test_only_http_urls_become_links_and_text_fragments_point_at_the_sentence() -> None:
    assert safe_url("javascript:alert(1)") is None and safe_url("data:text/html,x") is None
    assert safe_url("/relative/page") is None and safe_url(None) is None
    assert safe_url("https://example.org/a b(c)") == "https://example.org/a%20b%28c%29"
    short = fragment_link("https://example.org/news", "Rates held at 2.5% on Thursday.")
    assert short == "https://example.org/news#:~:text=Rates%20held%20at%202.5%25%20on%20Thursday."
    sentence = "A 19th-century lighthouse on the island has been restored at last."
    long = fragment_link("https://example.org/n#top", sentence)
    assert long == "https://example.org/n#top:~:text=A%2019th%2Dcentury%20lighthouse%20on,been%20restored%20at%20last."


def test_a_hostile_title_and_url_render_as_text_without_a_link(seed_library: Library) -> None:
    answer = Composer(seed_library).answer("What is the ECB deposit rate?", 1)
    source = answer.sources[0]
    citation = replace(
        source.hit.citation, title='<img src=x onerror="alert(1)"> [x](javascript:alert(2))', url="javascript:alert(3)"
    )
    reply = to_markdown(replace(answer, sources=(replace(source, hit=replace(source.hit, citation=citation)),)))
    assert "<img" not in reply and "javascript:alert(3)" not in reply and "](javascript" not in reply
    assert '1. **&lt;img src=x onerror="alert\\(1\\)"&gt; \\[x\\]\\(javascript:alert\\(2\\)\\)** · ' in reply


def test_an_empty_index_says_how_to_add_articles() -> None:
    empty = Answer("Anything?", "Anything?", False, 0.0, 0.47, (), ())
    assert to_markdown(empty).startswith("The index has no articles yet. Add .txt, .md, .html, .json or .jsonl")
