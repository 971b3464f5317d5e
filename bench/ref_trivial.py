"""Reference for bench/ui_bench.py: one slider and one line of text."""

import streamlit as st

n = st.slider("n", 1, 200, 10, key="n")
st.write(n)
