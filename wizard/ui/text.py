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


def md_escape(text: object, limit: int = 2000) -> str:
    """`text` as literal Markdown: one line, at most `limit` characters, nothing live."""
    s = _BREAKS.sub(" ", str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return _PUNCT.sub(r"\\\1", s)
