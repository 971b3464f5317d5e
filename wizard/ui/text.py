"""Visitor text inside Streamlit's Markdown elements (st.error, st.info, st.caption...).

Names, echoed link values and source fields come from whoever wrote the link or saved the
scenario: escaped here, they show as typed and never become a link, an image, a colour
directive, an emoji shortcode or LaTeX.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of
# them also breaks GFM autolinks (http://, www.) and Streamlit's :color[...] and :emoji:.
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_BREAKS = re.compile(r"[\r\n\t\u2028\u2029]+")


def md_escape(text: object, limit: int = 300) -> str:
    """`text` as literal Markdown: one line, at most `limit` characters, nothing live."""
    s = _BREAKS.sub(" ", str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return _PUNCT.sub(r"\\\1", s)
