"""Visitor text inside Streamlit's Markdown elements (st.error, st.info, st.caption...).

Names, echoed link values and source fields come from whoever wrote the link or saved the
scenario: escaped here, they show as typed and never become a link, an image, a colour
directive, an emoji shortcode or LaTeX.
"""

from __future__ import annotations

import re

# The ASCII punctuation Markdown, GFM and Streamlit give a meaning to (links, images,
# emphasis, code, headings, lists, tables, HTML, LaTeX, :color[...] and :emoji:, and the
# "http:", "www." and "a@b.c" autolinks); quotes, commas, "/" and "?" stay as they are.
_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&@^=])")
_BREAKS = re.compile(r"[\r\n\t\u2028\u2029]+")


# Streamlit's Markdown turns URLs and e-mail addresses in plain text into links after
# parsing, so escapes cannot stop it: a WORD JOINER (invisible) inside the trigger does.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|www)(?=[:.])|(?<=\w)(@)(?=\w)")
_JOINER = "\u2060"


def md_escape(text: object, limit: int = 2000) -> str:
    """`text` as literal Markdown: one line, at most `limit` characters, nothing live
    (no link, image, emphasis, directive, LaTeX, and no URL or address made a link)."""
    s = _BREAKS.sub(" ", str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _AUTOLINK.sub(lambda m: (m.group(1) or m.group(2)) + _JOINER, s)
    return _PUNCT.sub(r"\\\1", s)


def as_read(escaped: str) -> str:
    """What a visitor reads of md_escape's output (its inverse, for tests and logs)."""
    return re.sub(r"\\(.)", r"\1", escaped).replace(_JOINER, "")
